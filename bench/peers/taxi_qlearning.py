#!/usr/bin/env python3
"""Peer for bench/agent: the Hugging Face Deep RL course's tabular Q-learning train() on
a pure-Python Taxi-v3 (Gymnasium's map, rules and transition table), Q-table in numpy.

This is what a Python user would run; it is timed end to end, env included, with the
course settings (25 000 episodes, lr 0.7, gamma 0.95, 99 steps, eps 1.0 -> 0.05, decay
0.005). Prints one JSON line. Needs Debian's python3-numpy.
"""
import json
import random
import sys
import time

import numpy as np

MAP = [
    "+---------+",
    "|R: | : :G|",
    "| : | : : |",
    "| : : : : |",
    "| | : | : |",
    "|Y| : |B: |",
    "+---------+",
]
LOCS = [(0, 0), (0, 4), (4, 0), (4, 3)]


class Taxi:
    """Taxi-v3 as Gymnasium builds it: a P[state][action] table, then lookups."""

    def __init__(self, seed, max_episode_steps=200):
        self.rng = random.Random(seed)
        self.max_episode_steps = max_episode_steps
        self.P = [[None] * 6 for _ in range(500)]
        self.initial = []
        for row in range(5):
            for col in range(5):
                for pass_idx in range(5):
                    for dest_idx in range(4):
                        s = self.encode(row, col, pass_idx, dest_idx)
                        if pass_idx < 4 and pass_idx != dest_idx:
                            self.initial.append(s)
                        for a in range(6):
                            self.P[s][a] = self._transition(row, col, pass_idx, dest_idx, a)

    @staticmethod
    def encode(row, col, pass_idx, dest_idx):
        return ((row * 5 + col) * 5 + pass_idx) * 4 + dest_idx

    def _transition(self, row, col, pass_idx, dest_idx, a):
        new_row, new_col, new_pass = row, col, pass_idx
        reward, terminated = -1, False
        taxi_loc = (row, col)
        if a == 0:
            new_row = min(row + 1, 4)
        elif a == 1:
            new_row = max(row - 1, 0)
        elif a == 2 and MAP[1 + row][2 * col + 2] == ":":
            new_col = min(col + 1, 4)
        elif a == 3 and MAP[1 + row][2 * col] == ":":
            new_col = max(col - 1, 0)
        elif a == 4:
            if pass_idx < 4 and taxi_loc == LOCS[pass_idx]:
                new_pass = 4
            else:
                reward = -10
        elif a == 5:
            if taxi_loc == LOCS[dest_idx] and pass_idx == 4:
                new_pass, terminated, reward = dest_idx, True, 20
            elif taxi_loc in LOCS and pass_idx == 4:
                new_pass = LOCS.index(taxi_loc)
            else:
                reward = -10
        return self.encode(new_row, new_col, new_pass, dest_idx), reward, terminated

    def reset(self):
        self.steps = 0
        self.s = self.rng.choice(self.initial)
        return self.s

    def step(self, a):
        s, r, term = self.P[self.s][a]
        self.s = s
        self.steps += 1
        return s, r, term, self.steps >= self.max_episode_steps


def train(env, episodes=25_000, lr=0.7, gamma=0.95, max_steps=99, max_eps=1.0, min_eps=0.05, decay=0.005):
    q = np.zeros((500, 6))
    updates = 0
    for episode in range(episodes):
        epsilon = min_eps + (max_eps - min_eps) * np.exp(-decay * episode)
        state = env.reset()
        for _ in range(max_steps):
            if random.uniform(0, 1) > epsilon:
                action = int(np.argmax(q[state][:]))
            else:
                action = random.randrange(6)
            new_state, reward, terminated, truncated = env.step(action)
            q[state][action] = q[state][action] + lr * (reward + gamma * np.max(q[new_state]) - q[state][action])
            updates += 1
            if terminated or truncated:
                break
            state = new_state
    return q, updates


def evaluate(env, q, episodes=100, max_steps=99):
    total = 0.0
    for _ in range(episodes):
        s = env.reset()
        for _ in range(max_steps):
            s, r, term, trunc = env.step(int(np.argmax(q[s])))
            total += r
            if term or trunc:
                break
    return total / episodes


def main():
    seed = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    random.seed(seed)
    env = Taxi(seed)
    start = time.perf_counter()
    q, updates = train(env)
    wall = time.perf_counter() - start
    print(json.dumps({"peer": "python_numpy_taxi_train", "episodes": 25_000, "updates": updates,
                      "wall_s": wall, "updates_per_s": updates / wall,
                      "greedy_mean_return": evaluate(Taxi(seed + 1), q)}))


if __name__ == "__main__":
    main()
