#include "parallel.h"

#include <cblas.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>
#include <vector>

namespace cleave::kernels::cpu {
namespace {

void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  std::this_thread::yield();
#endif
}

// Spin iterations (a pause is ~40-150 cycles) before a worker or the caller blocks: a
// decode step's ops come microseconds apart, and a futex wake-up costs tens of
// microseconds on a VM, so short waits spin and long ones (between steps) sleep.
constexpr int kSpin = 4000;

class Pool {
 public:
  explicit Pool(int workers) : workers_(workers) {
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { WorkerLoop(); });
  }

  int size() const { return workers_ + 1; }

  // False when another ParallelFor holds the pool.
  bool TryRun(int n, absl::FunctionRef<void(int)> fn) {
    std::unique_lock<std::mutex> run(run_mu_, std::try_to_lock);
    if (!run.owns_lock()) return false;
    {
      std::lock_guard<std::mutex> l(mu_);
      fn_ = &fn;
      n_ = n;
      next_.store(0, std::memory_order_relaxed);
      done_.store(0, std::memory_order_relaxed);
      ++generation_;
      published_.store(generation_, std::memory_order_release);
    }
    work_cv_.notify_all();
    Claim(fn, n);
    // Every worker reports in, so none can still hold this call's fn once we return.
    for (int s = 0; s < kSpin && done_.load(std::memory_order_acquire) < workers_; ++s) CpuRelax();
    std::unique_lock<std::mutex> l(mu_);
    done_cv_.wait(l, [&] { return done_.load(std::memory_order_acquire) == workers_; });
    fn_ = nullptr;
    return true;
  }

 private:
  void Claim(absl::FunctionRef<void(int)> fn, int n) {
    for (int i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < n;) fn(i);
  }

  void WorkerLoop() {
    uint64_t seen = 0;
    for (;;) {
      for (int s = 0; s < kSpin && published_.load(std::memory_order_acquire) == seen; ++s) {
        CpuRelax();
      }
      std::unique_lock<std::mutex> l(mu_);
      work_cv_.wait(l, [&] { return generation_ != seen; });
      seen = generation_;
      const absl::FunctionRef<void(int)> fn = *fn_;
      const int n = n_;
      l.unlock();
      Claim(fn, n);
      l.lock();
      if (done_.fetch_add(1, std::memory_order_acq_rel) + 1 == workers_) done_cv_.notify_one();
    }
  }

  const int workers_;
  std::vector<std::thread> threads_;
  std::mutex run_mu_;  // one ParallelFor at a time
  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  uint64_t generation_ = 0;             // guarded by mu_
  const absl::FunctionRef<void(int)>* fn_ = nullptr;  // guarded by mu_
  int n_ = 0;                           // guarded by mu_
  std::atomic<uint64_t> published_{0};  // generation_, readable without mu_ for spinning
  std::atomic<int> next_{0};            // next index to claim
  std::atomic<int> done_{0};            // workers finished with this generation
};

Pool& GetPool() {
  // Sized from OpenBLAS's own thread count (OPENBLAS_NUM_THREADS, else the cores), read
  // before Init turns OpenBLAS down to one thread. Leaked: the workers must outlive every
  // static that might still run a kernel at exit.
  static Pool* pool = new Pool(std::max(1, openblas_get_num_threads()) - 1);
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
