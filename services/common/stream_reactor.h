// A server-streaming reactor that any thread can feed: Push queues a message, Close ends the
// stream once the queue has drained. gRPC allows one write in flight, so messages wait here.
//
// Lifetime: two owners, gRPC (until OnDone) and the producer (until Close). The object deletes
// itself when both have let go, so a producer (an engine callback, a relay) may Push or Close
// after the client is gone without touching freed memory. The producer must Close exactly once.
#ifndef CLEAVE_SERVICES_COMMON_STREAM_REACTOR_H_
#define CLEAVE_SERVICES_COMMON_STREAM_REACTOR_H_

#include <deque>
#include <functional>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "grpcpp/support/server_callback.h"

namespace cleave {

template <typename Msg>
class StreamReactor final : public grpc::ServerWriteReactor<Msg> {
 public:
  // on_cancel runs at most once, when the client cancels or goes away before Close.
  explicit StreamReactor(std::function<void()> on_cancel) : on_cancel_(std::move(on_cancel)) {}

  void Push(Msg message) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_ || broken_) return;
      queue_.push_back(std::move(message));
    }
    Pump();
  }

  void Close(const grpc::Status& status) {
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      closed_ = true;
      status_ = status;
    }
    Pump();
    Unref();
  }

  void OnWriteDone(bool ok) override {
    {
      absl::MutexLock lock(&mu_);
      writing_ = false;
      if (!ok) {
        broken_ = true;
        queue_.clear();
      }
    }
    if (!ok) Cancelled();
    Pump();
  }

  void OnCancel() override { Cancelled(); }

  void OnDone() override {
    {
      absl::MutexLock lock(&mu_);
      done_ = true;
    }
    Unref();
  }

 private:
  void Cancelled() {
    std::function<void()> fn;
    {
      absl::MutexLock lock(&mu_);
      if (closed_) return;
      fn = std::exchange(on_cancel_, nullptr);
    }
    if (fn) fn();
  }

  // Starts the next write, or finishes once closed and drained. gRPC calls happen outside the
  // lock: a reaction may run on this thread.
  void Pump() {
    enum { kNothing, kWrite, kFinish } action = kNothing;
    grpc::Status status;
    {
      absl::MutexLock lock(&mu_);
      if (writing_ || finished_ || done_) return;
      if (!queue_.empty() && !broken_) {
        current_ = std::move(queue_.front());
        queue_.pop_front();
        writing_ = true;
        action = kWrite;
      } else if (closed_ || broken_) {
        finished_ = true;
        status = broken_ && status_.ok() ? grpc::Status::CANCELLED : status_;
        action = kFinish;
      }
    }
    if (action == kWrite) this->StartWrite(&current_);
    if (action == kFinish) this->Finish(status);
  }

  void Unref() {
    bool last;
    {
      absl::MutexLock lock(&mu_);
      last = --refs_ == 0;
    }
    if (last) delete this;
  }

  absl::Mutex mu_;
  std::deque<Msg> queue_ ABSL_GUARDED_BY(mu_);
  Msg current_;  // the message being written; gRPC reads it until OnWriteDone
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  bool broken_ ABSL_GUARDED_BY(mu_) = false;  // a write failed: the client is gone
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  bool done_ ABSL_GUARDED_BY(mu_) = false;  // gRPC is through with this call
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  int refs_ ABSL_GUARDED_BY(mu_) = 2;
  std::function<void()> on_cancel_ ABSL_GUARDED_BY(mu_);
};

}  // namespace cleave

#endif  // CLEAVE_SERVICES_COMMON_STREAM_REACTOR_H_
