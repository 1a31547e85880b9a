// Discrete-event engine: a clock and a queue of callbacks.
//
// Ordering contract (tested): events run in increasing time; events at the
// same time run in the order they were scheduled (FIFO by a per-queue sequence
// number). Time never runs backwards: scheduling in the past is an internal
// error. The queue owns no global state, so independent simulations can run in
// one process or in parallel threads.
#pragma once
#include <cstdint>
#include <functional>
#include <queue>
#include <vector>

#include "sim/core/error.h"
#include "sim/core/time.h"

namespace pdsim {

class EventQueue {
 public:
  using Action = std::function<void()>;

  SimTime now() const { return now_; }
  std::uint64_t events_run() const { return events_run_; }
  bool empty() const { return heap_.empty(); }
  std::size_t pending() const { return heap_.size(); }

  // REQUIRES: at >= now().
  void schedule_at(SimTime at, Action action) {
    PDSIM_CHECK(at >= now_, "event scheduled in the past");
    heap_.push(Event{at, next_seq_++, std::move(action)});
  }
  void schedule_after(SimTime delay, Action action) { schedule_at(now_ + delay, std::move(action)); }

  // Runs the earliest event. Returns false when the queue is empty.
  bool step() {
    if (heap_.empty()) return false;
    // priority_queue::top is const; the action is moved out via const_cast,
    // which is safe because the element is popped before anything reads it.
    Event& top = const_cast<Event&>(heap_.top());
    const SimTime at = top.at;
    Action action = std::move(top.action);
    heap_.pop();
    PDSIM_CHECK(at >= now_, "time ran backwards");
    now_ = at;
    ++events_run_;
    action();
    return true;
  }

  void run() {
    while (step()) {
    }
  }

 private:
  struct Event {
    SimTime at;
    std::uint64_t seq;
    Action action;
  };
  struct Later {
    bool operator()(const Event& a, const Event& b) const {
      return a.at != b.at ? a.at > b.at : a.seq > b.seq;
    }
  };
  std::priority_queue<Event, std::vector<Event>, Later> heap_;
  SimTime now_ = 0;
  std::uint64_t next_seq_ = 0;
  std::uint64_t events_run_ = 0;
};

}  // namespace pdsim
