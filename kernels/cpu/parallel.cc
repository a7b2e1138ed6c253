#include "parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <thread>

namespace cleave::kernels::cpu {
namespace {

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spin iterations (a pause is ~40-150 cycles, so ~100 us) before a worker or the caller
// blocks: a decode step's ops come microseconds apart, and a futex sleep and wake-up
// costs tens of microseconds on a VM (measured: 2000 spins decode ~20% faster than 400
// on an idle 2-core machine). Not longer, because spinning is CPU time taken from the
// other thread when the machine is oversubscribed.
constexpr int kSpin = 2000;

// Work items are claimed from one 64-bit word: the call's generation in the high half,
// the next index in the low half. A worker that wakes late, after its call has ended,
// fails to claim (the generation moved on) and so never runs a finished call's fn; the
// caller therefore only waits for the items, never for idle workers to check in.
class Pool {
 public:
  explicit Pool(int workers) : workers_(workers) {
    for (int i = 0; i < workers; ++i) std::thread([this] { WorkerLoop(); }).detach();
  }

  int size() const { return workers_ + 1; }

  // False when another ParallelFor holds the pool.
  bool TryRun(int n, absl::FunctionRef<void(int)> fn) {
    std::unique_lock<std::mutex> run(run_mu_, std::try_to_lock);
    if (!run.owns_lock()) return false;
    uint64_t generation;
    {
      std::lock_guard<std::mutex> l(mu_);
      generation = ++generation_;
      fn_ = &fn;
      n_ = n;
      remaining_.store(n, std::memory_order_relaxed);
      claim_.store(generation << 32, std::memory_order_release);
    }
    work_cv_.notify_all();
    Claim(generation, fn, n);
    for (int s = 0; s < kSpin && remaining_.load(std::memory_order_acquire) > 0; ++s) CpuRelax();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return remaining_.load(std::memory_order_acquire) == 0; });
    fn_ = nullptr;  // `fn` dies with this frame
    return true;
  }

 private:
  // Runs items of call `generation` until none are left.
  void Claim(uint64_t generation, absl::FunctionRef<void(int)> fn, int n) {
    uint64_t cur = claim_.load(std::memory_order_acquire);
    for (;;) {
      const int index = static_cast<int>(cur & 0xffffffffu);
      if ((cur >> 32) != generation || index >= n) return;
      if (!claim_.compare_exchange_weak(cur, cur + 1, std::memory_order_acq_rel)) continue;
      fn(index);
      if (remaining_.fetch_sub(1, std::memory_order_acq_rel) == 1) {
        std::lock_guard<std::mutex> l(mu_);
        done_cv_.notify_one();
      }
      cur = claim_.load(std::memory_order_acquire);
    }
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    for (;;) {
      for (int s = 0; s < kSpin && (claim_.load(std::memory_order_acquire) >> 32) == seen; ++s) {
        CpuRelax();
      }
      std::unique_lock<std::mutex> l(mu_);
      work_cv_.wait(l, [&] { return generation_ != seen; });
      seen = generation_;
      if (fn_ == nullptr) continue;  // that call is over
      // Copies of the call's fn and n; fn is only invoked after a successful claim,
      // which proves the call is still waiting.
      const absl::FunctionRef<void(int)> fn = *fn_;
      const int n = n_;
      l.unlock();
      Claim(seen, fn, n);
    }
  }

  const int workers_;
  std::mutex run_mu_;  // one ParallelFor at a time
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  uint64_t generation_ = 0;                           // guarded by mu_
  const absl::FunctionRef<void(int)>* fn_ = nullptr;  // guarded by mu_
  int n_ = 0;                                         // guarded by mu_
  std::atomic<uint64_t> claim_{0};
  std::atomic<int> remaining_{0};  // items of the current call not yet finished
};

// CLEAVE_CPU_THREADS when set, else OpenBLAS's own count (OPENBLAS_NUM_THREADS, else
// the cores), read before Init turns OpenBLAS down to one thread.
int ConfiguredThreads() {
  int n = 0;
  if (const char* env = std::getenv("CLEAVE_CPU_THREADS")) n = std::atoi(env);
  if (n <= 0) n = openblas_get_num_threads();
  return std::clamp(n, 1, 256);
}

Pool& GetPool() {
  // Leaked: the workers must outlive every static that might still run a kernel at exit.
  static Pool* pool = new Pool(ConfiguredThreads() - 1);
  return *pool;
}

}  // namespace

int NumThreads() { return GetPool().size(); }

void ParallelFor(int n, absl::FunctionRef<void(int)> fn) {
  if (n <= 0) return;
  if (n == 1 || NumThreads() == 1 || !GetPool().TryRun(n, fn)) {
    for (int i = 0; i < n; ++i) fn(i);
  }
}

}  // namespace cleave::kernels::cpu
