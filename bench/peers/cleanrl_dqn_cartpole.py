#!/usr/bin/env python3
"""Peer for the DQN's CartPole training speed: CleanRL's dqn.py (Huang et al., JMLR 2022),
reduced to its training loop on the numpy CartPole of cartpole_numpy.py, one thread.

Kept from dqn.py, line for line where it matters: the 4-120-84-2 QNetwork, Adam (lr 2.5e-4),
a 10 000-transition replay buffer sampled uniformly, gamma 0.99, a hard target copy every 500
steps (tau 1), batch 128, epsilon linear from 1 to 0.05 over half the run, learning starts at
10 000 steps, a gradient step every 10, MSE loss on Q(s, a) against r + gamma (1 - terminated)
max_a' Q_target(s', a'), truncated episodes stored with their real next observation.
Left out: gymnasium's vector env (one numpy env instead, reset on terminated or truncated),
SB3's ReplayBuffer (a numpy ring of the same size), logging, evaluation and model saving.

Prints one JSON line: {"peer": "cleanrl_dqn_cartpole", "steps_per_s": ...,
"train_phase_steps_per_s": ..., ...}: steps_per_s is CleanRL's own SPS (global steps over wall
time of the whole run), steps_per_cpu_s the same over this process's CPU time (robust to other
load on the machine), train_phase_steps_per_s the wall-time rate once learning has started.
Usage: cleanrl_dqn_cartpole.py [--total-timesteps 500000] [--seed 1]
"""

import argparse
import json
import os
import platform
import random
import sys
import time

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from cartpole_numpy import NumpyCartPole  # noqa: E402  (the peer env of bench_cartpole)


class QNetwork(nn.Module):
    def __init__(self, obs_size, n_actions):
        super().__init__()
        self.network = nn.Sequential(
            nn.Linear(obs_size, 120),
            nn.ReLU(),
            nn.Linear(120, 84),
            nn.ReLU(),
            nn.Linear(84, n_actions),
        )

    def forward(self, x):
        return self.network(x)


def linear_schedule(start_e, end_e, duration, t):
    slope = (end_e - start_e) / duration
    return max(slope * t + start_e, end_e)


def train(args):
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    torch.set_num_threads(1)

    env = NumpyCartPole(args.seed)
    obs_size, n_actions = 4, 2
    q_network = QNetwork(obs_size, n_actions)
    optimizer = optim.Adam(q_network.parameters(), lr=args.learning_rate)
    target_network = QNetwork(obs_size, n_actions)
    target_network.load_state_dict(q_network.state_dict())

    # Replay ring, as SB3's ReplayBuffer with optimize_memory_usage=False.
    size = args.buffer_size
    rb_obs = np.zeros((size, obs_size), dtype=np.float32)
    rb_next_obs = np.zeros((size, obs_size), dtype=np.float32)
    rb_actions = np.zeros((size, 1), dtype=np.int64)
    rb_rewards = np.zeros((size, 1), dtype=np.float32)
    rb_dones = np.zeros((size, 1), dtype=np.float32)
    rb_pos, rb_full = 0, False

    returns, episode_return = [], 0.0
    obs = env.reset()
    start_time, start_cpu = time.perf_counter(), time.process_time()
    train_start_time = None
    for global_step in range(args.total_timesteps):
        epsilon = linear_schedule(
            args.start_e, args.end_e, args.exploration_fraction * args.total_timesteps, global_step
        )
        if random.random() < epsilon:
            action = random.randrange(n_actions)
        else:
            q_values = q_network(torch.Tensor(obs).unsqueeze(0))
            action = int(torch.argmax(q_values, dim=1).item())

        next_obs, reward, terminated, truncated = env.step(action)
        episode_return += reward
        rb_obs[rb_pos] = obs
        rb_next_obs[rb_pos] = next_obs  # the real next observation, truncated or not
        rb_actions[rb_pos] = action
        rb_rewards[rb_pos] = reward
        rb_dones[rb_pos] = float(terminated)
        rb_pos = (rb_pos + 1) % size
        rb_full = rb_full or rb_pos == 0
        if terminated or truncated:
            returns.append(episode_return)
            episode_return = 0.0
            obs = env.reset()
        else:
            obs = next_obs

        if global_step > args.learning_starts:
            if train_start_time is None:
                train_start_time, train_start_step = time.perf_counter(), global_step
            if global_step % args.train_frequency == 0:
                upper = size if rb_full else rb_pos
                idx = np.random.randint(0, upper, size=args.batch_size)
                observations = torch.from_numpy(rb_obs[idx])
                next_observations = torch.from_numpy(rb_next_obs[idx])
                actions = torch.from_numpy(rb_actions[idx])
                rewards = torch.from_numpy(rb_rewards[idx])
                dones = torch.from_numpy(rb_dones[idx])
                with torch.no_grad():
                    target_max, _ = target_network(next_observations).max(dim=1)
                    td_target = rewards.flatten() + args.gamma * target_max * (1 - dones.flatten())
                old_val = q_network(observations).gather(1, actions).squeeze()
                loss = F.mse_loss(td_target, old_val)

                optimizer.zero_grad()
                loss.backward()
                optimizer.step()

            if global_step % args.target_network_frequency == 0:
                for target_param, q_param in zip(target_network.parameters(), q_network.parameters()):
                    target_param.data.copy_(args.tau * q_param.data + (1.0 - args.tau) * target_param.data)

    end_time, end_cpu = time.perf_counter(), time.process_time()
    train_steps = args.total_timesteps - train_start_step if train_start_time else 0
    return {
        "peer": "cleanrl_dqn_cartpole",
        "steps_per_s": args.total_timesteps / (end_time - start_time),
        # On a shared machine wall time includes waiting for a core; CPU time does not.
        "steps_per_cpu_s": args.total_timesteps / (end_cpu - start_cpu),
        "train_phase_steps_per_s": train_steps / (end_time - train_start_time) if train_start_time else None,
        "total_timesteps": args.total_timesteps,
        "seconds": end_time - start_time,
        "episodes": len(returns),
        "mean_return_last_20": float(np.mean(returns[-20:])) if returns else None,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "torch": torch.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--total-timesteps", type=int, default=500000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--learning-rate", type=float, default=2.5e-4)
    parser.add_argument("--buffer-size", type=int, default=10000)
    parser.add_argument("--gamma", type=float, default=0.99)
    parser.add_argument("--tau", type=float, default=1.0)
    parser.add_argument("--target-network-frequency", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--start-e", type=float, default=1.0)
    parser.add_argument("--end-e", type=float, default=0.05)
    parser.add_argument("--exploration-fraction", type=float, default=0.5)
    parser.add_argument("--learning-starts", type=int, default=10000)
    parser.add_argument("--train-frequency", type=int, default=10)
    args = parser.parse_args()
    print(json.dumps(train(args)))


if __name__ == "__main__":
    main()
