// What a training loop's greedy evaluation reports: the mean and spread of the return over
// a fixed list of evaluation episodes (the same list for every training seed).
#pragma once

namespace forkcast::training {

struct EvalSummary {
  int episodes = 0;
  double mean_return = 0;
  double std_return = 0;  // population standard deviation over the episodes
};

}  // namespace forkcast::training
