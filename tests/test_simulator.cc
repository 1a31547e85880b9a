#include <doctest/doctest.h>

#include <map>
#include <sstream>
#include <thread>

#include "sim/core/error.h"
#include "sim/core/rng.h"
#include "test_util.h"

using namespace pdsim;
using namespace pdsim::test;

namespace {
double cost_s(const Scenario& s, const PoolConfig& pool, const std::vector<SeqShape>& seqs) {
  std::vector<Op> ops;
  build_ops(s.model, pool.par, stats_of(seqs), ops);
  return make_cost_model(s, pool)->total_s(ops);
}

nlohmann::json one_request(std::int64_t input, std::int64_t output) {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 1;
  doc["workload"]["input_tokens"] = {{"dist", "fixed"}, {"value", input}};
  doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", output}};
  return doc;
}

std::string csv_of(const SimResult& r) {
  std::ostringstream o;
  write_requests_csv(o, r);
  return o.str();
}
}  // namespace

TEST_CASE("zero load: TTFT is the prefill cost and tokens are spaced by decode iterations") {
  const Scenario s = make_scenario(one_request(512, 16));
  const SimResult r = run(s);
  REQUIRE(r.records.size() == 1);
  const RequestRecord& rec = r.records[0];
  CHECK(rec.first_token - rec.arrival == seconds_to_ns(cost_s(s, s.prefill, {{512, 0}})));
  // KV transfer: bytes / bandwidth + latency (ceil to ns).
  const double bytes = s.model.kv_bytes_per_token() * 512;
  const SimTime transfer = rec.transfer_end - rec.transfer_start;
  CHECK(std::llabs(transfer - seconds_to_ns(bytes / (400e9 / 8) + 5e-6)) <= 1);
  CHECK(rec.transfer_start == rec.prefill_end);
  CHECK(rec.decode_start == rec.transfer_end);
  // Decode k (k = 1..15) reads 512 + k tokens of KV.
  SimTime decode = 0, first_iteration = 0;
  for (int k = 1; k < 16; ++k) {
    const SimTime it = seconds_to_ns(cost_s(s, s.decode, {{1, 512 + k - 1}}));
    if (k == 1) first_iteration = it;
    decode += it;
  }
  CHECK(rec.finish - rec.decode_start == decode);
  CHECK(rec.max_tbt == rec.transfer_end - rec.first_token + first_iteration);
  CHECK(rec.first_tbt == rec.max_tbt);  // the first gap holds the transfer
  CHECK(r.tbt.count() == 15);
}

TEST_CASE("colocated chunked prefill: TTFT is the sum of its chunk iterations") {
  auto doc = one_request(2000, 4);
  doc["cluster"] = nlohmann::json::parse(
      R"({"mode": "colocated", "colocated": {"gpu": "h100-sxm", "instances": 1, "policy": "chunked", "chunk_tokens": 512}})");
  const Scenario s = make_scenario(doc);
  const SimResult r = run(s);
  SimTime expected = 0;
  for (std::int64_t done = 0; done < 2000; done += 512) {
    const std::int64_t chunk = std::min<std::int64_t>(512, 2000 - done);
    BatchStats b;
    b.add({chunk, done}, done + chunk == 2000);
    std::vector<Op> ops;
    build_ops(s.model, s.colocated.par, b, ops);
    expected += seconds_to_ns(make_cost_model(s, s.colocated)->total_s(ops));
  }
  CHECK(r.records[0].first_token - r.records[0].arrival == expected);
  CHECK(r.records[0].transfer_start == -1);
}

TEST_CASE("concurrent KV transfers share the link equally") {
  // Two prompts arrive together; the second prefills after the first, so its
  // transfer starts while the first's is in flight. Processor sharing gives:
  //   end1 = t2 + 2 (B - R (t2 - t1)) / R,   end2 = t1 + 2 B / R.
  auto doc = one_request(4096, 2);
  doc["workload"]["num_requests"] = 2;
  doc["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 2}};
  doc["cluster"]["kv_transfer"]["bandwidth_gbps"] = 10;
  doc["cluster"]["kv_transfer"]["latency_us"] = 0;
  const Scenario s = make_scenario(doc);
  const SimResult r = run(s);
  const double B = s.model.kv_bytes_per_token() * 4096, R = 10e9 / 8;
  const double t1 = ns_to_seconds(r.records[0].transfer_start), t2 = ns_to_seconds(r.records[1].transfer_start);
  REQUIRE(t2 > t1);
  REQUIRE(t2 < t1 + B / R);  // the transfers overlap
  CHECK(ns_to_seconds(r.records[0].transfer_end) == doctest::Approx(t2 + 2 * (B - R * (t2 - t1)) / R).epsilon(1e-8));
  CHECK(ns_to_seconds(r.records[1].transfer_end) == doctest::Approx(t1 + 2 * B / R).epsilon(1e-8));
}

TEST_CASE("layerwise transfer hides most of the KV transfer behind prefill") {
  auto doc = one_request(4096, 2);
  doc["cluster"]["kv_transfer"]["bandwidth_gbps"] = 100;
  const SimResult plain = run(make_scenario(doc));
  doc["cluster"]["kv_transfer"]["layerwise"] = true;
  const Scenario s = make_scenario(doc);
  const SimResult lw = run(s);
  const auto& a = plain.records[0];
  const auto& b = lw.records[0];
  // The idle decode instance reserves at once, so streaming starts with the
  // prefill; the link outpaces the prefill, so what is left at its end is the
  // last layer's KV: (B / L) / R + latency.
  CHECK(b.transfer_start == b.prefill_start);
  CHECK(b.transfer_end - b.prefill_end < a.transfer_end - a.prefill_end);
  const double last_layer = s.model.kv_bytes_per_token() * 4096 / s.model.layers / (100e9 / 8);
  CHECK(std::llabs(b.transfer_end - b.prefill_end - seconds_to_ns(last_layer + 5e-6)) <= 2);
}

namespace {
// Decode-pool KV capacity (tokens) of `doc` as given.
std::int64_t decode_capacity(const nlohmann::json& doc) {
  const Scenario s = make_scenario(doc);
  return kv_capacity_tokens(s.model, s.decode, s.file);
}
}  // namespace

TEST_CASE("layerwise streaming starts only once the decode instance has reserved memory") {
  // Decode memory holds one request. Request 0 decodes for seconds; request 1
  // prefills meanwhile, so its KV cannot stream (pull model) until request 0
  // finishes, long after its prefill: then it all crosses, B / R + latency.
  auto doc = one_request(1000, 1000);
  doc["cluster"]["decode"]["memory_utilization"] = 0.25;
  const std::int64_t capacity = decode_capacity(doc);
  const std::int64_t prompt = capacity / 2;  // prompt + output fits once, not twice
  doc = one_request(prompt, 1000);
  doc["workload"]["num_requests"] = 2;
  doc["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 2}};
  doc["cluster"]["decode"]["memory_utilization"] = 0.25;
  doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  doc["cluster"]["kv_transfer"]["layerwise"] = true;
  const Scenario s = make_scenario(doc);
  const SimResult r = run(s);
  const RequestRecord &r0 = r.records[0], &r1 = r.records[1];
  CHECK(r0.transfer_start == r0.prefill_start);  // reserved at once: streams during its prefill
  REQUIRE(r1.transfer_start == r0.finish);        // request 0's memory came back
  REQUIRE(r1.transfer_start > r1.prefill_end);
  const double bytes = s.model.kv_bytes_per_token() * prompt;
  CHECK(std::llabs(r1.transfer_end - r1.transfer_start - seconds_to_ns(bytes / (400e9 / 8) + 5e-6)) <= 1);
}

TEST_CASE("layerwise streams share the link with other flows by processor sharing") {
  // Two prompts arrive together and prefill one after the other, each taking
  // T, on a link of R = B / (2T): slower than the KV is produced (B / T).
  // Production lags one layer (l = T / L). Flow 0 sends alone at R over
  // [l, T + l] (its own KV, then its last layer): B / 2. Flow 1 has KV from
  // T + l; both then get R / 2, so flow 0 ends at T + l + (B / 2) / (R / 2) =
  // 3T + l, and flow 1, with B / 2 left, alone at R, at 4T + l.
  auto doc = one_request(4096, 2);
  doc["workload"]["num_requests"] = 2;
  doc["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 2}};
  doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  doc["cluster"]["kv_transfer"]["layerwise"] = true;
  doc["cluster"]["kv_transfer"]["latency_us"] = 0;
  Scenario s = make_scenario(doc);
  const SimTime T = seconds_to_ns(cost_s(s, s.prefill, {{4096, 0}}));
  const double B = s.model.kv_bytes_per_token() * 4096;
  doc["cluster"]["kv_transfer"]["bandwidth_gbps"] = B / (2 * ns_to_seconds(T)) * 8 / 1e9;
  s = make_scenario(doc);
  const SimResult r = run(s);
  const RequestRecord &r0 = r.records[0], &r1 = r.records[1];
  REQUIRE(r0.prefill_start == 0);
  REQUIRE(r1.prefill_start == T);
  const double lag = static_cast<double>(T) / s.model.layers;
  CHECK(std::fabs(static_cast<double>(r0.transfer_end) - (3.0 * T + lag)) <= 4);
  CHECK(std::fabs(static_cast<double>(r1.transfer_end) - (4.0 * T + lag)) <= 4);
  CHECK(r1.transfer_start == T);  // the idle decode instance reserved as the prefill started
}


TEST_CASE("conservation under memory pressure: every request finishes once and KV stays within capacity") {
  for (const char* mode : {"disaggregated", "layerwise", "prefill_priority", "chunked"}) {
    CAPTURE(mode);
    auto doc = base_scenario();
    doc["workload"]["num_requests"] = 3000;
    doc["workload"]["arrival"]["rate_rps"] = 60;
    doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 3000}, {"cv", 1.0}, {"min", 1}, {"max", 30000}};
    doc["workload"]["output_tokens"] = {{"dist", "uniform"}, {"min", 1}, {"max", 400}};
    // Little KV room so admission blocks often.
    doc["cluster"]["decode"]["memory_utilization"] = 0.3;
    doc["cluster"]["prefill"]["memory_utilization"] = 0.25;
    if (std::string(mode) == "layerwise") doc["cluster"]["kv_transfer"]["layerwise"] = true;
    if (std::string(mode) != "disaggregated" && std::string(mode) != "layerwise") {
      doc["cluster"] = {{"mode", "colocated"},
                        {"colocated",
                         {{"gpu", "h100-sxm"}, {"instances", 2}, {"policy", mode}, {"memory_utilization", 0.3}}},
                        {"router", "least_loaded"}};
    }
    const Scenario s = make_scenario(doc);
    const SimResult r = run(s);  // the engine checks KV <= capacity at every change and returns to 0
    REQUIRE(r.records.size() == 3000);
    for (const auto& rec : r.records) {
      REQUIRE(rec.arrival >= 0);
      REQUIRE(rec.prefill_start >= rec.arrival);
      REQUIRE(rec.first_token >= rec.prefill_start);
      REQUIRE(rec.finish >= rec.first_token);
      if (rec.output_tokens > 1 && s.mode == Mode::kDisaggregated) {
        // Layerwise KV may start streaming with the prefill, never before it, and arrives after it.
        REQUIRE(rec.transfer_start >= (s.kv_transfer.layerwise ? rec.prefill_start : rec.prefill_end));
        REQUIRE(rec.transfer_end > rec.prefill_end);
        REQUIRE(rec.decode_start >= rec.transfer_end);
      }
    }
    const PoolStats& pool = s.mode == Mode::kDisaggregated ? r.decode : r.colocated;
    CHECK(pool.kv_peak_fraction <= 1.0);
    CHECK(pool.kv_peak_fraction > 0.8);  // the pressure was real
  }
}

TEST_CASE("closed loop keeps the configured number of requests in flight (N = X * R)") {
  auto doc = base_scenario();
  doc["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 16}};
  doc["workload"]["num_requests"] = 4000;
  doc["workload"]["output_tokens"] = {{"dist", "uniform"}, {"min", 8}, {"max", 256}};
  const Scenario s = make_scenario(doc);
  const auto summary = make_summary(s, run(s));
  const double throughput = summary["throughput"]["requests_per_s"];
  const double mean_e2e = summary["e2e_s"]["mean"];
  CHECK(throughput * mean_e2e == doctest::Approx(16).epsilon(0.02));
}

TEST_CASE("Little's law holds for an open-loop run") {
  // L (time-average requests in system, integrated from the records) = lambda * W.
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 5000;
  doc["workload"]["arrival"]["rate_rps"] = 8;
  const Scenario s = make_scenario(doc);
  const SimResult r = run(s);
  std::vector<std::pair<SimTime, int>> edges;
  double sum_w = 0;
  for (const auto& rec : r.records) {
    edges.push_back({rec.arrival, +1});
    edges.push_back({rec.finish, -1});
    sum_w += rec.e2e_s();
  }
  std::sort(edges.begin(), edges.end());
  double area = 0;
  int in_system = 0;
  for (std::size_t i = 0; i + 1 < edges.size(); ++i) {
    in_system += edges[i].second;
    area += in_system * ns_to_seconds(edges[i + 1].first - edges[i].first);
  }
  const double span = ns_to_seconds(edges.back().first - edges.front().first);
  const double lambda = r.records.size() / span;
  CHECK(area / span == doctest::Approx(lambda * sum_w / r.records.size()).epsilon(1e-6));
}

TEST_CASE("disaggregation lowers P99 TBT versus colocated prefill-priority at equal GPU count") {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 3000;
  doc["workload"]["arrival"]["rate_rps"] = 12;
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 4096}, {"cv", 0.5}, {"min", 256}, {"max", 16384}};
  doc["workload"]["output_tokens"] = {{"dist", "uniform"}, {"min", 32}, {"max", 256}};
  doc["cluster"]["prefill"]["instances"] = 2;
  doc["cluster"]["decode"]["instances"] = 2;
  const Scenario disagg = make_scenario(doc);
  doc["cluster"] = nlohmann::json::parse(
      R"({"mode": "colocated", "colocated": {"gpu": "h100-sxm", "instances": 4, "policy": "prefill_priority"}})");
  const Scenario coloc = make_scenario(doc);
  REQUIRE(disagg.total_gpus() == coloc.total_gpus());
  const SimResult a = run(disagg), b = run(coloc);
  const double tbt_disagg = a.tbt.quantile_s(99), tbt_coloc = b.tbt.quantile_s(99);
  CAPTURE(tbt_disagg);
  CAPTURE(tbt_coloc);
  CHECK(tbt_disagg < 0.5 * tbt_coloc);
}

TEST_CASE("same seed gives byte-identical outputs - two simulations run side by side in threads") {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 2000;
  doc["workload"]["arrival"]["rate_rps"] = 10;
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 1500}, {"cv", 0.8}, {"min", 1}, {"max", 20000}};
  doc["cluster"]["router"] = "least_loaded";
  doc["cluster"]["decode"]["instances"] = 2;
  const Scenario s = make_scenario(doc);
  const SimResult serial = run(s);
  SimResult t1, t2;
  std::thread a([&] { t1 = run(s); });
  std::thread b([&] { t2 = run(s); });
  a.join();
  b.join();
  const std::string summary = make_summary(s, serial).dump();
  CHECK(make_summary(s, t1).dump() == summary);
  CHECK(make_summary(s, t2).dump() == summary);
  CHECK(csv_of(t1) == csv_of(serial));
  doc["seed"] = 8;
  CHECK(make_summary(make_scenario(doc), run(make_scenario(doc))).dump() != summary);
}

TEST_CASE("gap histogram quantiles are within 0.05% of exact quantiles") {
  GapHistogram h;
  std::vector<double> exact;
  Rng rng(5, 1);
  for (int i = 0; i < 100000; ++i) {
    const SimTime gap = static_cast<SimTime>(rng.lognormal_mean_cv(2e7, 1.5)) + 1000;
    h.add(gap);
    exact.push_back(ns_to_seconds(gap));
  }
  std::sort(exact.begin(), exact.end());
  for (double p : {50.0, 90.0, 99.0}) {
    const double nearest_rank = exact[static_cast<std::size_t>(std::ceil(p / 100 * exact.size())) - 1];
    CHECK(h.quantile_s(p) == doctest::Approx(nearest_rank).epsilon(5e-4));
  }
  CHECK(h.count() == 100000);
}

TEST_CASE("a pool's own router overrides the cluster's and least_loaded balances heavy-tailed prompts") {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 4000;
  doc["workload"]["input_tokens"] = {{"dist", "lognormal"}, {"mean", 2048}, {"cv", 1.5}, {"min", 16}, {"max", 32000}};
  doc["workload"]["output_tokens"] = {{"dist", "fixed"}, {"value", 1}};
  doc["cluster"]["prefill"]["instances"] = 2;
  doc["cluster"]["prefill"]["max_batch_requests"] = 1;
  doc["cluster"]["router"] = "round_robin";
  // ~80% prefill load: the mean prompt takes about 45 ms on one H100.
  doc["workload"]["arrival"]["rate_rps"] = 35;
  const Scenario rr = make_scenario(doc);
  CHECK(rr.prefill.router == RouterKind::kRoundRobin);
  doc["cluster"]["prefill"]["router"] = "least_loaded";
  const Scenario ll = make_scenario(doc);
  CHECK(ll.prefill.router == RouterKind::kLeastLoaded);
  CHECK(ll.decode.router == RouterKind::kRoundRobin);
  const auto a = make_summary(rr, run(rr)), b = make_summary(ll, run(ll));
  const double rr_p90 = a["ttft_s"]["p90"], ll_p90 = b["ttft_s"]["p90"];
  CAPTURE(rr_p90);
  CAPTURE(ll_p90);
  CHECK(ll_p90 < 0.8 * rr_p90);
}

TEST_CASE("KV bytes moved count the whole prompt KV with or without layerwise streaming") {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 50;
  const Scenario plain = make_scenario(doc);
  doc["cluster"]["kv_transfer"]["layerwise"] = true;
  const Scenario layerwise = make_scenario(doc);
  const double expected = plain.model.kv_bytes_per_token() * 512 * 50;
  CHECK(run(plain).kv_bytes_moved == expected);
  CHECK(run(layerwise).kv_bytes_moved == expected);
}

TEST_CASE("least_loaded prefill routing counts prompts whose KV has not left") {
  // Prefill and decode instances each hold one request's KV. Request 0 (t=0)
  // decodes for seconds on the only decode instance; request 1 (t=2 s)
  // prefills on instance 0 and its KV waits there for decode memory. Request 2
  // (t=4 s) must go to idle instance 1: instance 0 cannot admit it until
  // request 0 finishes, though its prefill queue is empty.
  auto doc = one_request(1000, 2000);
  doc["cluster"]["prefill"]["memory_utilization"] = 0.25;
  doc["cluster"]["decode"]["memory_utilization"] = 0.25;
  const std::int64_t capacity = decode_capacity(doc);  // the same GPU: the same for prefill
  const std::int64_t prompt = capacity * 6 / 10;      // one fits, two do not, with or without output
  doc = one_request(prompt, 2000);
  doc["workload"]["num_requests"] = 3;
  doc["workload"]["arrival"] = {{"process", "constant"}, {"rate_rps", 0.5}};
  doc["cluster"]["prefill"]["instances"] = 2;
  doc["cluster"]["prefill"]["memory_utilization"] = 0.25;
  doc["cluster"]["decode"]["memory_utilization"] = 0.25;
  doc["cluster"]["router"] = "least_loaded";
  const Scenario s = make_scenario(doc);
  REQUIRE(prompt + 2000 <= capacity);
  const SimResult r = run(s);
  const RequestRecord &r1 = r.records[1], &r2 = r.records[2];
  REQUIRE(r.records[0].transfer_end < r1.arrival);  // instance 0 was empty again when request 1 came
  REQUIRE(r1.prefill_instance == 0);
  REQUIRE(r1.prefill_end < r2.arrival);
  REQUIRE(r1.transfer_start > r2.arrival);  // its KV still held instance 0's memory
  CHECK(r2.prefill_instance == 1);
  CHECK(r2.prefill_start == r2.arrival);
}

TEST_CASE("colocated closed loop routes the next request on the loads after the step") {
  // Chunked, 2 instances, least_loaded, 3 clients. At t=0: r0 (16 in, 2 out)
  // starts alone on instance 0; r1 (16 in, 4800 out) goes to instance 1; r2
  // (5000 in, 2 out) to instance 0 (18 < 4816 outstanding tokens). Instance
  // 0's second step decodes r0's last token and prefills 511 tokens of r2.
  // r0's finish brings r3: after the step instance 0 holds 4489 prompt + 2
  // output tokens of r2 = 4491, instance 1 about 4810 (r1 emitted a few
  // tokens), so r3 goes to instance 0 (before the chunk is counted, 5002 > 4810).
  auto doc = base_scenario();
  doc["workload"]["arrival"] = {{"process", "closed_loop"}, {"concurrency", 3}};
  doc["workload"]["num_requests"] = 4;
  doc["cluster"] = nlohmann::json::parse(R"({"mode": "colocated", "router": "least_loaded",
      "colocated": {"gpu": "h100-sxm", "instances": 2, "policy": "chunked", "chunk_tokens": 512}})");
  const Scenario s = make_scenario(doc);
  std::vector<RequestSpec> specs = {{0, 16, 2}, {0, 16, 4800}, {0, 5000, 2}, {0, 16, 2}};
  const SimResult r = simulate(s, specs);
  REQUIRE(r.records[0].prefill_instance == 0);
  REQUIRE(r.records[1].prefill_instance == 1);
  REQUIRE(r.records[2].prefill_instance == 0);
  REQUIRE(r.records[3].arrival == r.records[0].finish);
  REQUIRE(r.records[2].first_token > r.records[3].arrival);  // r2 still had 4489 prompt tokens to go
  CHECK(r.records[3].prefill_instance == 0);
}

TEST_CASE("utilisation and mean KV use are averaged over the same window from first arrival to last finish") {
  // One request arriving at t = 1 s on an idle cluster. The prefill instance
  // holds the prompt's blocks from prefill start until its KV has left; the
  // decode instance holds prompt + output blocks from the transfer start to
  // the finish. Window: arrival to finish.
  const Scenario s = make_scenario(one_request(512, 16));
  const SimResult r = simulate(s, {RequestSpec{seconds_to_ns(1.0), 512, 16}});
  const RequestRecord& rec = r.records[0];
  const auto summary = make_summary(s, r);
  const double window = ns_to_seconds(rec.finish - rec.arrival);
  const double prefill_blocks = 512 / 16, decode_blocks = (512 + 16) / 16;
  const double prefill_cap = static_cast<double>(r.prefill.kv_capacity_tokens / 16);
  const double decode_cap = static_cast<double>(r.decode.kv_capacity_tokens / 16);
  const auto& pools = summary["pools"];
  CHECK(pools["prefill"]["kv_mean_fraction"].get<double>() ==
        doctest::Approx(prefill_blocks / prefill_cap * ns_to_seconds(rec.transfer_end - rec.prefill_start) / window)
            .epsilon(1e-12));
  CHECK(pools["decode"]["kv_mean_fraction"].get<double>() ==
        doctest::Approx(decode_blocks / decode_cap * ns_to_seconds(rec.finish - rec.transfer_start) / window)
            .epsilon(1e-12));
  CHECK(pools["prefill"]["utilization"].get<double>() ==
        doctest::Approx(ns_to_seconds(rec.prefill_end - rec.prefill_start) / window).epsilon(1e-12));
  CHECK(summary["throughput"]["duration_s"].get<double>() == doctest::Approx(window).epsilon(1e-12));
}

TEST_CASE("on_batch reports every batch as priced: its shape re-prices to its duration and durations sum to busy time") {
  for (const char* cluster :
       {R"({"mode": "disaggregated", "prefill": {"gpu": "h100-sxm", "instances": 2, "tp": 1},
            "decode": {"gpu": "a100-sxm-80g", "instances": 1, "tp": 2, "max_batch_size": 64},
            "kv_transfer": {"bandwidth_gbps": 100, "latency_us": 5, "layerwise": false}, "router": "round_robin"})",
        R"({"mode": "colocated", "colocated": {"gpu": "h100-sxm", "instances": 2, "policy": "chunked", "chunk_tokens": 256}})"}) {
    CAPTURE(cluster);
    auto doc = base_scenario();
    doc["cluster"] = nlohmann::json::parse(cluster);
    doc["workload"]["num_requests"] = 60;
    doc["workload"]["arrival"]["rate_rps"] = 20.0;
    doc["workload"]["input_tokens"] = {{"dist", "uniform"}, {"min", 100}, {"max", 2000}};
    const Scenario s = make_scenario(doc);
    std::vector<BatchRecord> batches;
    SimOptions opt;
    opt.on_batch = [&](const BatchRecord& b) { batches.push_back(b); };
    const SimResult r = simulate(s, generate_requests(s.workload, s.seed), opt);
    std::map<std::string, std::pair<std::int64_t, SimTime>> per_pool;  // batches, summed duration
    std::vector<Op> ops;
    int mismatched = 0, unordered = 0;
    for (std::size_t i = 0; i < batches.size(); ++i) {
      const BatchRecord& b = batches[i];
      const PoolConfig& pool = s.pool(b.pool);
      build_ops(s.model, pool.par, b.stats, ops);
      mismatched += std::max<SimTime>(seconds_to_ns(make_cost_model(s, pool)->total_s(ops)), 1) != b.duration;
      unordered += i > 0 && b.start < batches[i - 1].start;
      per_pool[b.pool].first += 1;
      per_pool[b.pool].second += b.duration;
    }
    CHECK(mismatched == 0);
    CHECK(unordered == 0);
    for (const auto& [name, st] : std::map<std::string, const PoolStats*>{
             {"prefill", &r.prefill}, {"decode", &r.decode}, {"colocated", &r.colocated}}) {
      CAPTURE(name);
      CHECK(per_pool[name].first == st->batches);
      CHECK(ns_to_seconds(per_pool[name].second) == doctest::Approx(st->busy_s).epsilon(1e-12));
    }
    CHECK(!batches.empty());
  }
}

TEST_CASE("a batch lists every sequence's shape: contexts and prompt pairs add up to the requests' own") {
  // Oracles from the requests alone: a request of prompt n and output o is
  // decoded at contexts n+1 .. n+o-1 (one step each), and its prompt's causal
  // pairs are n(n+1)/2 however it is chunked.
  for (const char* cluster :
       {R"({"mode": "disaggregated", "prefill": {"gpu": "h100-sxm", "instances": 1, "tp": 1, "max_batch_requests": 4},
            "decode": {"gpu": "h100-sxm", "instances": 2, "tp": 1, "max_batch_size": 8},
            "kv_transfer": {"bandwidth_gbps": 100, "latency_us": 5, "layerwise": false}, "router": "round_robin"})",
        R"({"mode": "colocated", "colocated": {"gpu": "h100-sxm", "instances": 1, "policy": "chunked", "chunk_tokens": 256}})",
        R"({"mode": "colocated", "colocated": {"gpu": "h100-sxm", "instances": 1, "policy": "prefill_priority"}})"}) {
    CAPTURE(cluster);
    auto doc = base_scenario();
    doc["cluster"] = nlohmann::json::parse(cluster);
    doc["workload"]["num_requests"] = 40;
    doc["workload"]["arrival"]["rate_rps"] = 30.0;
    doc["workload"]["input_tokens"] = {{"dist", "uniform"}, {"min", 10}, {"max", 900}};
    doc["workload"]["output_tokens"] = {{"dist", "uniform"}, {"min", 1}, {"max", 30}};
    const Scenario s = make_scenario(doc);
    const auto reqs = generate_requests(s.workload, s.seed);
    double want_steps = 0, want_kv = 0, want_pairs = 0;
    for (const auto& q : reqs) {
      const double n = static_cast<double>(q.input_tokens), o = static_cast<double>(q.output_tokens);
      want_steps += o - 1;
      want_kv += (o - 1) * n + (o - 1) * o / 2;  // sum of n + k, k = 1 .. o-1
      want_pairs += n * (n + 1) / 2;
    }
    double steps = 0, kv = 0, pairs = 0;
    int mismatched = 0;
    SimOptions opt;
    opt.on_batch = [&](const BatchRecord& b) {
      const BatchStats again = stats_of(b.stats.seqs);
      mismatched += again.new_tokens != b.stats.new_tokens || again.decode_kv_tokens != b.stats.decode_kv_tokens ||
                    again.prefill_pairs != b.stats.prefill_pairs;
      for (const SeqShape& q : b.stats.seqs) {
        if (q.new_tokens == 1) {
          steps += 1;
          kv += static_cast<double>(q.cached_tokens + 1);
        } else {
          const double n = static_cast<double>(q.new_tokens), c = static_cast<double>(q.cached_tokens);
          pairs += n * c + n * (n + 1) / 2;
        }
      }
    };
    simulate(s, reqs, opt);
    CHECK(mismatched == 0);
    CHECK(steps == want_steps);
    CHECK(kv == want_kv);
    CHECK(pairs == want_pairs);
  }
}

TEST_CASE("the first inter-token gap holds the KV transfer and the wait to join, and is one of the TBT samples") {
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 300;
  doc["workload"]["arrival"]["rate_rps"] = 12.0;
  doc["workload"]["input_tokens"] = {{"dist", "uniform"}, {"min", 64}, {"max", 4000}};
  doc["workload"]["output_tokens"] = {{"dist", "uniform"}, {"min", 1}, {"max", 40}};
  doc["cluster"]["kv_transfer"]["bandwidth_gbps"] = 25;  // transfers of several ms
  const Scenario s = make_scenario(doc);
  const SimResult r = run(s);
  int with_gap = 0, bad = 0;
  for (const auto& rec : r.records) {
    if (rec.output_tokens == 1) {
      bad += rec.first_tbt != -1;
      continue;
    }
    ++with_gap;
    // Second token: after the transfer, the join and one decode step.
    bad += !(rec.first_tbt > rec.decode_start - rec.first_token && rec.decode_start >= rec.transfer_end);
    bad += !(rec.first_tbt <= rec.max_tbt);
  }
  CHECK(bad == 0);
  const auto summary = make_summary(s, r);
  CHECK(summary["first_tbt_s"]["count"].get<int>() == with_gap);
  CHECK(summary["first_tbt_s"]["max"].get<double>() <= summary["tbt_s"]["max"].get<double>() * (1 + 1e-3));
  // Transfers at 25 Gb/s make the first gap the long one, and most of the TBT p99 tail.
  CHECK(summary["first_tbt_s"]["p50"].get<double>() > summary["tbt_s"]["p50"].get<double>());
  const double p99 = summary["tbt_s"]["p99"].get<double>();
  int in_tail = 0;
  for (const auto& rec : r.records) in_tail += rec.first_tbt >= 0 && ns_to_seconds(rec.first_tbt) >= p99;
  CHECK(summary["first_tbt_s"]["at_or_above_tbt_p99"].get<int>() == in_tail);
  CHECK(in_tail >= static_cast<int>(r.tbt.count() / 200));
}

TEST_CASE("a batch priced past the simulated clock's range is an input error, not a wrapped time") {
  // In-range profile values still price a decode step at ~1.6e7 s (16 GB of
  // weights at 1 MB/s x 0.001), so 200 steps end past 1e9 s; beyond int64 ns
  // the conversion would wrap (a 1e-300 factor ran as 0 s batches).
  auto doc = base_scenario();
  doc["workload"]["num_requests"] = 4;
  doc["workload"]["output_tokens"]["value"] = 200;
  Scenario s = make_scenario(doc);
  s.decode.gpu.hbm_gbytes_per_s = 1e-3;
  s.decode.gpu.eff_memory = 1e-3;
  s.decode.gpu.calibrated = Calibration{};
  CHECK_THROWS_WITH_AS(run(s),
                       doctest::Contains("test.json: $.cluster.decode: a batch the roofline cost model priced at "),
                       InputError);
  CHECK_THROWS_WITH_AS(run(s), doctest::Contains(" s would end past the simulated clock's 1e9 s: check GPU \"h100-sxm\"'s profile"),
                       InputError);
}
