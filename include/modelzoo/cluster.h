// One download per cache across the processes of a job (README "One download per cluster"), over a
// c10d store from LibTorch. Under torchrun (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT)
// this happens by itself; a program with its own store passes it here. Not included by
// <modelzoo/modelzoo.h>: it pulls in LibTorch's c10d headers.
#pragma once

#include <chrono>

#include <torch/csrc/distributed/c10d/Store.hpp>

namespace mz::cluster {

struct Options {
  int rank = 0;
  int world_size = 1;
  // The rank within its node; ranks rank - local_rank .. share a node and its cache. -1: LOCAL_RANK
  // from the environment, else the rank itself (so rank 0 downloads for everyone).
  int local_rank = -1;
  // One cache for the whole cluster (a shared file system): rank 0 downloads for every rank. Default:
  // MZ_SHARED_CACHE. Otherwise local rank 0 of each node downloads for its node.
  bool shared_cache = false;
  // How long a rank waits for the one downloading (default: MZ_STORE_TIMEOUT, 1800 s), and how long
  // that rank may go without a sign of life before the others give up (MZ_STORE_HEARTBEAT, 60 s).
  std::chrono::milliseconds timeout{0}, heartbeat{0};
  static Options from_env();  // RANK, WORLD_SIZE, LOCAL_RANK, MZ_SHARED_CACHE, MZ_STORE_TIMEOUT, ...
};

// Every fetch of this process (builders, mz::hub::fetch, text assets) now coordinates over `store`,
// under the key prefix "modelzoo/". Every rank must fetch the same weights in the same order.
void use_store(c10::intrusive_ptr<c10d::Store> store, Options options);
// Stops using a store passed to use_store (the torchrun environment applies again, if present).
void stop_using_store();

}  // namespace mz::cluster
