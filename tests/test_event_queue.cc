#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "sim/core/event_queue.h"

using namespace pdsim;

TEST_CASE("events run in time order and equal times in scheduling order") {
  EventQueue q;
  std::string log;
  q.schedule_at(30, [&] { log += "c"; });
  q.schedule_at(10, [&] { log += "a"; });
  q.schedule_at(20, [&] { log += "b1"; });
  q.schedule_at(20, [&] { log += "b2"; });
  q.schedule_at(20, [&] { log += "b3"; });
  q.run();
  CHECK(log == "ab1b2b3c");
  CHECK(q.now() == 30);
  CHECK(q.events_run() == 5);
}

TEST_CASE("an event scheduled at the current time runs after those already queued for it") {
  EventQueue q;
  std::vector<int> order;
  q.schedule_at(5, [&] {
    order.push_back(1);
    q.schedule_at(5, [&] { order.push_back(3); });
  });
  q.schedule_at(5, [&] { order.push_back(2); });
  q.run();
  CHECK(order == std::vector<int>{1, 2, 3});
}

TEST_CASE("scheduling in the past is an internal error") {
  EventQueue q;
  q.schedule_at(100, [&] { q.schedule_at(50, [] {}); });
  CHECK_THROWS_AS(q.run(), InternalError);
}

TEST_CASE("two event queues are independent") {
  EventQueue a, b;
  int ra = 0, rb = 0;
  a.schedule_at(10, [&] { ++ra; });
  b.schedule_at(99, [&] { ++rb; });
  a.run();
  CHECK(a.now() == 10);
  CHECK(b.now() == 0);
  CHECK(ra == 1);
  CHECK(rb == 0);
  b.run();
  CHECK(b.now() == 99);
}
