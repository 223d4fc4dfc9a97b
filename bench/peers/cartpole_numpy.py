#!/usr/bin/env python3
"""Peer for bench_cartpole: CartPole-v1 in plain numpy, written the way a numpy user
writes it (and the way Gymnasium's CartPoleEnv is written): the state is a float64
np.ndarray, reset draws from np.random.default_rng, step() unpacks the state, applies the
same equations and returns a float32 observation. The loop and the policy match
BM_CartPoleStep (push towards the side the pole leans to; reset on termination or on
the 500-step time limit).

Prints one JSON line: {"peer": "numpy_cartpole", "steps_per_s": ..., ...}.
Usage: cartpole_numpy.py [--seconds 2.0] [--seed 1]
"""

import argparse
import json
import math
import platform
import time

import numpy as np


class NumpyCartPole:
    gravity = 9.8
    masscart = 1.0
    masspole = 0.1
    total_mass = masspole + masscart
    length = 0.5  # half the pole's length
    polemass_length = masspole * length
    force_mag = 10.0
    tau = 0.02
    theta_threshold_radians = 12 * 2 * math.pi / 360
    x_threshold = 2.4
    max_episode_steps = 500

    def __init__(self, seed):
        self.rng = np.random.default_rng(seed)
        self.state = None
        self.elapsed = 0

    def reset(self):
        self.state = self.rng.uniform(low=-0.05, high=0.05, size=(4,))
        self.elapsed = 0
        return np.array(self.state, dtype=np.float32)

    def step(self, action):
        x, x_dot, theta, theta_dot = self.state
        force = self.force_mag if action == 1 else -self.force_mag
        costheta = math.cos(theta)
        sintheta = math.sin(theta)
        temp = (force + self.polemass_length * theta_dot**2 * sintheta) / self.total_mass
        thetaacc = (self.gravity * sintheta - costheta * temp) / (
            self.length * (4.0 / 3.0 - self.masspole * costheta**2 / self.total_mass)
        )
        xacc = temp - self.polemass_length * thetaacc * costheta / self.total_mass
        x = x + self.tau * x_dot
        x_dot = x_dot + self.tau * xacc
        theta = theta + self.tau * theta_dot
        theta_dot = theta_dot + self.tau * thetaacc
        self.state = np.array((x, x_dot, theta, theta_dot), dtype=np.float64)
        terminated = bool(
            x < -self.x_threshold
            or x > self.x_threshold
            or theta < -self.theta_threshold_radians
            or theta > self.theta_threshold_radians
        )
        self.elapsed += 1
        truncated = self.elapsed >= self.max_episode_steps
        return np.array(self.state, dtype=np.float32), 1.0, terminated, truncated


def measure(seconds, seed):
    env = NumpyCartPole(seed)
    obs = env.reset()
    steps = 0
    batch = 1000  # check the clock once per batch so timing does not dominate
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        for _ in range(batch):
            action = 1 if obs[2] + obs[3] > 0.0 else 0
            obs, _, terminated, truncated = env.step(action)
            if terminated or truncated:
                obs = env.reset()
        steps += batch
        now = time.perf_counter()
        if now >= deadline:
            return steps, now - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    steps, elapsed = measure(args.seconds, args.seed)
    print(
        json.dumps(
            {
                "peer": "numpy_cartpole",
                "steps_per_s": steps / elapsed,
                "steps": steps,
                "seconds": elapsed,
                "python": platform.python_version(),
                "numpy": np.__version__,
            }
        )
    )


if __name__ == "__main__":
    main()
