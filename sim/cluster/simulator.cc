#include "sim/cluster/simulator.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <deque>
#include <limits>
#include <utility>

#include "sim/core/error.h"
#include "sim/core/event_queue.h"
#include "sim/cost/batch_pricer.h"
#include "sim/cost/factory.h"
#include "sim/cost/real_kernel.h"
#include "sim/cost/real_timings.h"

namespace pdsim {

std::unique_ptr<CostModel> make_cost_model(const Scenario& scenario, const PoolConfig& pool,
                                           const RealKernelOptions* real) {
  return make_cost_model(scenario.cost_model, pool.gpu, scenario.model, scenario.file + ": " + pool.json_path + ".gpu",
                         scenario.data_dir, real ? *real : scenario.real_kernel);
}

namespace {

std::int64_t blocks_for(std::int64_t tokens, std::int64_t block_tokens) {
  return (tokens + block_tokens - 1) / block_tokens;
}

// Egress link of one prefill instance, processor-shared by its flows. A flow
// whose KV is still being produced (layerwise streaming) and that has sent
// all of it so far can take at most the production rate; the others share
// what is left equally (max-min fair, so the link is work-conserving).
//
// Production is fluid and lags one layer: a prefill over [s, e] of an
// L-layer model has produced bytes x max(0, (t - s) / (e - s) - 1/L) by t < e,
// and all of it at e (layer l's KV leaves once layer l has run, spread evenly
// over the prefill). So the last layer's 1/L is always sent after e.
class SharedLink {
 public:
  SharedLink(EventQueue& q, double bytes_per_s, SimTime latency_ns, std::function<void(int)> on_done)
      : q_(q), bytes_per_ns_(bytes_per_s * 1e-9), latency_ns_(latency_ns), on_done_(std::move(on_done)) {}

  // Starts sending `bytes` now. REQUIRES: if produce_end > now, the KV is
  // produced by a prefill over [produce_start, produce_end] of `layers` layers.
  void start(int request, double bytes, SimTime produce_start, SimTime produce_end, int layers) {
    advance();
    Flow f;
    f.request = request;
    f.bytes = f.remaining_bytes = bytes;
    if (produce_end > q_.now()) {
      const double span = static_cast<double>(produce_end - produce_start);
      f.produce_end = produce_end;
      f.lag_end = static_cast<double>(produce_start) + span / layers;
      f.produce_rate = bytes / span;
    }
    flows_.push_back(f);
    reschedule();
  }

 private:
  struct Flow {
    int request = 0;
    double bytes = 0;
    double remaining_bytes = 0;
    SimTime produce_end = 0;  // all KV produced from then on
    double lag_end = 0;       // ns; production starts (one layer into the prefill)
    double produce_rate = 0;  // bytes per ns in [lag_end, produce_end)
    bool shared = true;       // takes an equal share; else `rate` (its production rate)
    double rate = 0;
  };

  // Bytes of f not produced yet at `now`.
  static double unproduced(const Flow& f, SimTime now) {
    if (now >= f.produce_end) return 0;
    return f.bytes - f.produce_rate * std::max(0.0, static_cast<double>(now) - f.lag_end);
  }
  static double production_rate(const Flow& f, SimTime now) {
    return static_cast<double>(now) < f.lag_end ? 0.0 : f.produce_rate;
  }

  void advance() {
    const SimTime now = q_.now();
    if (!flows_.empty() && now > last_update_) {
      const double dt = static_cast<double>(now - last_update_);
      const double each = share_count_ ? share_bytes_per_ns_ * dt / static_cast<double>(share_count_) : 0.0;
      for (auto& f : flows_) {
        f.remaining_bytes -= f.shared ? each : f.rate * dt;
        // An event rounded up to whole ns may overshoot a catch-up point: nothing unproduced is sent.
        if (now < f.produce_end) f.remaining_bytes = std::max(f.remaining_bytes, unproduced(f, now));
      }
    }
    last_update_ = now;
  }

  // Assigns rates (water-filling) and schedules the next change: a flow
  // finishing, catching up with its production, or a production breakpoint.
  void reschedule() {
    const std::uint64_t version = ++version_;
    if (flows_.empty()) return;
    const SimTime now = q_.now();
    capped_.clear();
    for (std::size_t i = 0; i < flows_.size(); ++i) {
      Flow& f = flows_[i];
      f.shared = true;
      // Half a byte of residue is floating-point rounding, not data.
      if (now < f.produce_end && f.remaining_bytes <= unproduced(f, now) + 0.5)
        capped_.push_back({production_rate(f, now), i});
    }
    std::sort(capped_.begin(), capped_.end());
    double capacity = bytes_per_ns_;
    std::size_t k = flows_.size();
    for (const auto& [cap, i] : capped_) {
      if (cap * static_cast<double>(k) > capacity) break;  // above the equal share: not limiting
      flows_[i].shared = false;
      flows_[i].rate = cap;
      capacity -= cap;
      --k;
    }
    share_bytes_per_ns_ = capacity;
    share_count_ = k;
    const double share = k ? capacity / static_cast<double>(k) : 0.0;
    double next = std::numeric_limits<double>::infinity();
    double least = next;  // remaining bytes of the nearest-to-done shared flow with all KV produced
    for (const auto& f : flows_) {
      if (now < f.produce_end) {
        const double t = static_cast<double>(now);
        if (t < f.lag_end) next = std::min(next, f.lag_end - t);
        next = std::min(next, static_cast<double>(f.produce_end - now));
        const double p = production_rate(f, now);
        if (f.shared && share > p) next = std::min(next, (f.remaining_bytes - unproduced(f, now)) / (share - p));
      } else if (f.shared) {
        least = std::min(least, f.remaining_bytes);
      }
    }
    if (k > 0 && capacity > 0 && least < std::numeric_limits<double>::infinity())
      next = std::min(next, std::max(0.0, least) * static_cast<double>(k) / capacity);
    if (next == std::numeric_limits<double>::infinity()) return;  // nothing moves until a start()
    q_.schedule_after(static_cast<SimTime>(std::ceil(std::max(0.0, next))), [this, version] { on_event(version); });
  }

  void on_event(std::uint64_t version) {
    if (version != version_) return;  // superseded by a later start()
    advance();
    const SimTime now = q_.now();
    std::vector<int> done;
    auto finished = [now](const Flow& f) { return now >= f.produce_end && f.remaining_bytes <= 0.5; };
    for (const auto& f : flows_)
      if (finished(f)) done.push_back(f.request);
    flows_.erase(std::remove_if(flows_.begin(), flows_.end(), finished), flows_.end());
    reschedule();
    for (int r : done) q_.schedule_after(latency_ns_, [this, r] { on_done_(r); });
  }

  EventQueue& q_;
  double bytes_per_ns_;
  SimTime latency_ns_;
  std::function<void(int)> on_done_;
  std::vector<Flow> flows_;
  std::vector<std::pair<double, std::size_t>> capped_;  // scratch: (production rate, flow index)
  double share_bytes_per_ns_ = 0;  // capacity left to the shared flows
  std::size_t share_count_ = 0;
  SimTime last_update_ = 0;
  std::uint64_t version_ = 0;
};

enum class Role { kPrefill, kDecode, kColocated };

struct Instance {
  Role role = Role::kPrefill;
  int index = 0;
  const PoolConfig* pool = nullptr;
  const CostModel* cost = nullptr;
  BatchPricer* pricer = nullptr;  // prices with `cost`; shared by the pool
  std::int64_t capacity_blocks = 0;
  std::int64_t used_blocks = 0;
  bool busy = false;
  // Router's "outstanding tokens". Prefill: prompt tokens queued, computing,
  // or whose KV has not left yet (it holds memory that blocks admission).
  std::int64_t load_tokens = 0;

  std::deque<int> waiting;            // prefill queue (prefill/colocated)
  std::deque<int> pending_transfer;   // decode: prefilled, waiting for KV blocks
  std::deque<int> ready;              // decode: KV arrived, waiting to join the batch
  std::vector<int> running;           // decoding requests
  std::vector<int> prefilling;        // chunked: admitted, prompt not finished
  double running_kv_tokens = 0;       // sum over running of (input + generated)

  // The batch in flight.
  std::vector<int> batch_prefill;
  std::vector<std::int64_t> batch_chunk;  // prompt tokens per batch_prefill entry
  std::vector<int> batch_decode;
  BatchStats batch_stats;  // its shape (reused: keeps the sequence list's memory)

  // Statistics.
  SimTime busy_ns = 0;
  std::int64_t batches = 0, batch_requests = 0, batch_tokens = 0;
  std::int64_t peak_blocks = 0;
  double block_ns = 0;
  SimTime last_kv_change = 0;
};

struct ReqState {
  std::int64_t generated = 0;      // output tokens emitted
  std::int64_t prefilled = 0;      // prompt tokens computed (chunked)
  SimTime last_token = -1;
  std::int64_t prefill_blocks = 0;  // held on the prefill instance
  std::int64_t decode_blocks = 0;   // reserved on the decode/colocated instance
  double transfer_bytes = 0;
  SimTime produce_start = 0, produce_end = 0;  // layerwise: the prefill producing the KV
};

class Engine {
 public:
  Engine(const Scenario& s, const std::vector<RequestSpec>& reqs, const SimOptions& opt)
      : s_(s), specs_(reqs), opt_(opt), state_(reqs.size()) {
    result_.records.resize(reqs.size());
    for (std::size_t i = 0; i < reqs.size(); ++i) {
      auto& r = result_.records[i];
      r.id = static_cast<std::int64_t>(i);
      r.input_tokens = reqs[i].input_tokens;
      r.output_tokens = reqs[i].output_tokens;
    }
    RealKernelOptions real = s.real_kernel;
    if (s.cost_model == "real" && !real.timings_file.empty())
      timings_ = real.timings = std::make_shared<RealTimings>(real.timings_file, s.model.name);
    if (s.mode == Mode::kDisaggregated) {
      prefill_cost_ = make_cost_model(s, s.prefill, &real);
      decode_cost_ = make_cost_model(s, s.decode, &real);
      add_pool(Role::kPrefill, s.prefill, prefill_cost_.get(), prefill_);
      add_pool(Role::kDecode, s.decode, decode_cost_.get(), decode_);
      const double bytes_per_s = s.kv_transfer.bandwidth_gbps * 1e9 / 8;
      for (std::size_t i = 0; i < prefill_.size(); ++i)
        links_.emplace_back(std::make_unique<SharedLink>(q_, bytes_per_s, seconds_to_ns(s.kv_transfer.latency_us * 1e-6),
                                                         [this](int r) { on_transfer_done(r); }));
    } else {
      colocated_cost_ = make_cost_model(s, s.colocated, &real);
      add_pool(Role::kColocated, s.colocated, colocated_cost_.get(), colocated_);
    }
    check_requests_fit();
  }

  SimResult run() {
    const auto n = specs_.size();
    if (n > 0) {
      const auto& a = s_.workload.arrival;
      if (a && a->process == ArrivalConfig::Process::kClosedLoop) {
        closed_loop_ = true;
        const std::size_t first = std::min<std::size_t>(n, static_cast<std::size_t>(a->concurrency));
        for (std::size_t i = 0; i < first; ++i) q_.schedule_at(0, [this, i] { arrive(static_cast<int>(i)); });
        next_closed_ = first;
      } else {
        q_.schedule_at(specs_[0].arrival_ns, [this] { arrive_open(0); });
      }
    }
    // Real-kernel events are slow (each batch runs on the backend): report every one.
    const std::uint64_t progress_mask = s_.cost_model == "real" ? 0 : 0xFFFF;
    while (q_.step()) {
      if (opt_.progress && (q_.events_run() & progress_mask) == 0)
        opt_.progress(static_cast<double>(finished_) / static_cast<double>(n));
    }
    PDSIM_CHECK(finished_ == n, "simulation ended with " + std::to_string(n - finished_) + " unfinished requests");
    result_.end_time = q_.now();
    result_.events = q_.events_run();
    result_.prefill = pool_stats(prefill_);
    result_.decode = pool_stats(decode_);
    result_.colocated = pool_stats(colocated_);
    if (timings_) timings_->save();  // only after a complete run: never a partial file
    for (const auto* c : {prefill_cost_.get(), decode_cost_.get(), colocated_cost_.get()})
      if (const auto* rk = dynamic_cast<const RealKernelCostModel*>(c)) {
        RealKernelStats& st = result_.real_kernel;
        st.present = true;
        st.backend = rk->backend_name();
        st.device = rk->device();
        const std::string layers = rk->layers_run();
        if (!layers.empty()) st.layers = st.layers.empty() || st.layers == layers ? layers : "mixed";
        st.batches_measured += rk->batches_measured();
        st.batches_memoized += rk->batches_memoized();
      }
    if (timings_) result_.real_kernel.batches_replayed = timings_->replayed();
    return std::move(result_);
  }

 private:
  void add_pool(Role role, const PoolConfig& pool, const CostModel* cost, std::vector<Instance>& out) {
    const std::int64_t capacity_tokens = kv_capacity_tokens(s_.model, pool, s_.file);
    pricers_.push_back(std::make_unique<BatchPricer>(*cost, s_.model, pool.par));
    for (int i = 0; i < pool.instances; ++i) {
      Instance inst;
      inst.role = role;
      inst.index = i;
      inst.pool = &pool;
      inst.cost = cost;
      inst.pricer = pricers_.back().get();
      // Sequence lists cost O(batch) per decode step: kept only where read.
      inst.batch_stats.keep_seqs = cost->needs_sequences() || static_cast<bool>(opt_.on_batch);
      inst.capacity_blocks = capacity_tokens / pool.block_tokens;
      out.push_back(std::move(inst));
    }
  }

  // A request that can never fit would stall the pool forever: reject it up front.
  void check_requests_fit() {
    const std::string where = s_.file + ": $.workload";
    auto need_tokens = [&](std::size_t i) {
      return static_cast<std::int64_t>(specs_[i].input_tokens) + specs_[i].output_tokens;
    };
    for (std::size_t i = 0; i < specs_.size(); ++i) {
      if (need_tokens(i) > s_.model.max_context)
        throw InputError(where, "request " + std::to_string(i) + " needs " + std::to_string(need_tokens(i)) +
                                    " tokens of context but " + s_.model.name + " allows " +
                                    std::to_string(s_.model.max_context));
      auto check = [&](const std::vector<Instance>& pool, std::int64_t tokens, const char* what) {
        if (pool.empty()) return;
        const auto& p = *pool.front().pool;
        if (blocks_for(tokens, p.block_tokens) > pool.front().capacity_blocks)
          throw InputError(where, "request " + std::to_string(i) + " needs KV for " + std::to_string(tokens) +
                                      " tokens but a " + what + " instance holds " +
                                      std::to_string(pool.front().capacity_blocks * p.block_tokens) +
                                      " (raise tp/pp or memory_utilization at " + p.json_path + ")");
      };
      check(prefill_, specs_[i].input_tokens, "prefill");
      check(decode_, need_tokens(i), "decode");
      check(colocated_, need_tokens(i), "colocated");
    }
  }

  // ---- KV accounting -------------------------------------------------------
  void change_blocks(Instance& inst, std::int64_t delta) {
    const SimTime now = q_.now();
    inst.block_ns += static_cast<double>(inst.used_blocks) * static_cast<double>(now - inst.last_kv_change);
    inst.last_kv_change = now;
    inst.used_blocks += delta;
    PDSIM_CHECK(inst.used_blocks >= 0, "KV blocks went negative");
    PDSIM_CHECK(inst.used_blocks <= inst.capacity_blocks, "KV use exceeds capacity");
    inst.peak_blocks = std::max(inst.peak_blocks, inst.used_blocks);
  }
  bool has_blocks(const Instance& inst, std::int64_t blocks) const {
    return inst.used_blocks + blocks <= inst.capacity_blocks;
  }

  // ---- Routing -------------------------------------------------------------
  Instance& route(std::vector<Instance>& pool, std::size_t& rr_counter) {
    if (pool.front().pool->router == RouterKind::kRoundRobin) return pool[rr_counter++ % pool.size()];
    std::size_t best = 0;  // ties go to the lowest index: deterministic
    for (std::size_t i = 1; i < pool.size(); ++i)
      if (pool[i].load_tokens < pool[best].load_tokens) best = i;
    return pool[best];
  }

  // ---- Arrivals ------------------------------------------------------------
  void arrive_open(std::size_t i) {
    if (i + 1 < specs_.size())
      q_.schedule_at(specs_[i + 1].arrival_ns, [this, i] { arrive_open(i + 1); });
    arrive(static_cast<int>(i));
  }

  void arrive(int r) {
    auto& rec = result_.records[r];
    rec.arrival = q_.now();
    const auto& spec = specs_[r];
    if (s_.mode == Mode::kDisaggregated) {
      Instance& inst = route(prefill_, rr_prefill_);
      rec.prefill_instance = inst.index;
      inst.load_tokens += spec.input_tokens;
      inst.waiting.push_back(r);
      try_start_prefill(inst);
    } else {
      Instance& inst = route(colocated_, rr_prefill_);
      rec.prefill_instance = rec.decode_instance = inst.index;
      inst.load_tokens += spec.input_tokens + spec.output_tokens;
      inst.waiting.push_back(r);
      if (!inst.busy) start_colocated_step(inst);
    }
  }

  void finish(int r) {
    auto& rec = result_.records[r];
    PDSIM_CHECK(rec.finish < 0, "request finished twice");
    rec.finish = q_.now();
    ++finished_;
    if (closed_loop_ && next_closed_ < specs_.size()) {
      const std::size_t next = next_closed_++;
      arrive(static_cast<int>(next));
    }
  }

  // First token: at the end of the prompt's prefill.
  void emit_first_token(int r) {
    auto& st = state_[r];
    auto& rec = result_.records[r];
    rec.prefill_end = rec.first_token = q_.now();
    st.generated = 1;
    st.last_token = q_.now();
  }

  // ---- Prefill pool (disaggregated) -----------------------------------------
  void try_start_prefill(Instance& inst) {
    if (inst.busy || inst.waiting.empty()) return;
    const PoolConfig& p = *inst.pool;
    std::int64_t tokens = 0;
    inst.batch_prefill.clear();
    BatchStats& stats = inst.batch_stats;
    stats.clear();
    while (!inst.waiting.empty() && static_cast<std::int64_t>(inst.batch_prefill.size()) < p.max_batch_requests) {
      const int r = inst.waiting.front();
      const std::int64_t in = specs_[r].input_tokens;
      // The first prompt is always taken, even above max_batch_tokens (it could never run otherwise).
      if (!inst.batch_prefill.empty() && tokens + in > p.max_batch_tokens) break;
      const std::int64_t blocks = blocks_for(in, p.block_tokens);
      if (!has_blocks(inst, blocks)) break;  // memory held by un-transferred KV: stop admitting
      inst.waiting.pop_front();
      change_blocks(inst, blocks);
      state_[r].prefill_blocks = blocks;
      tokens += in;
      inst.batch_prefill.push_back(r);
      stats.add({in, 0});
      result_.records[r].prefill_start = q_.now();
    }
    if (inst.batch_prefill.empty()) return;
    const SimTime duration = batch_time(inst, stats);
    begin_batch(inst, duration, static_cast<std::int64_t>(inst.batch_prefill.size()), tokens);
    q_.schedule_after(duration, [this, &inst] { on_prefill_done(inst); });
    if (s_.kv_transfer.layerwise) {
      // Streaming needs a decode reservation (pull model), so the decode
      // instance is picked now; the KV flows from when it has reserved.
      for (int r : inst.batch_prefill)
        if (specs_[r].output_tokens > 1) send_to_decode(r, q_.now(), q_.now() + duration);
    }
  }

  // The instance stays busy while results are handed on, so a request that
  // arrives meanwhile (closed loop) cannot start a batch in the middle of this.
  void on_prefill_done(Instance& inst) {
    const std::vector<int> batch = inst.batch_prefill;
    for (int r : batch) {
      emit_first_token(r);
      if (specs_[r].output_tokens == 1) {
        inst.load_tokens -= specs_[r].input_tokens;
        change_blocks(inst, -state_[r].prefill_blocks);
        state_[r].prefill_blocks = 0;
        finish(r);
        continue;
      }
      if (!s_.kv_transfer.layerwise) send_to_decode(r, 0, 0);
    }
    end_batch(inst);
    try_start_prefill(inst);
  }

  // Routes r to a decode instance and queues its KV transfer there. With
  // layerwise streaming the KV is produced over [produce_start, produce_end].
  void send_to_decode(int r, SimTime produce_start, SimTime produce_end) {
    auto& st = state_[r];
    st.transfer_bytes = s_.model.kv_bytes_per_token() * specs_[r].input_tokens;
    result_.kv_bytes_moved += st.transfer_bytes;
    st.produce_start = produce_start;
    st.produce_end = produce_end;
    Instance& dec = route(decode_, rr_decode_);
    result_.records[r].decode_instance = dec.index;
    dec.load_tokens += specs_[r].input_tokens + specs_[r].output_tokens - 1;
    dec.pending_transfer.push_back(r);
    try_admit_transfers(dec);
  }

  // ---- KV transfer ----------------------------------------------------------
  void try_admit_transfers(Instance& dec) {
    while (!dec.pending_transfer.empty()) {
      const int r = dec.pending_transfer.front();
      const std::int64_t blocks =
          blocks_for(static_cast<std::int64_t>(specs_[r].input_tokens) + specs_[r].output_tokens, dec.pool->block_tokens);
      if (!has_blocks(dec, blocks)) return;  // FCFS: later requests wait behind the head
      dec.pending_transfer.pop_front();
      change_blocks(dec, blocks);
      state_[r].decode_blocks = blocks;
      result_.records[r].transfer_start = q_.now();
      links_[result_.records[r].prefill_instance]->start(r, state_[r].transfer_bytes, state_[r].produce_start,
                                                         state_[r].produce_end, s_.model.layers);
    }
  }

  void on_transfer_done(int r) {
    auto& rec = result_.records[r];
    rec.transfer_end = q_.now();
    PDSIM_CHECK(rec.prefill_end >= 0, "KV transfer ended before its prefill");
    Instance& pre = prefill_[rec.prefill_instance];
    pre.load_tokens -= specs_[r].input_tokens;
    change_blocks(pre, -state_[r].prefill_blocks);
    state_[r].prefill_blocks = 0;
    try_start_prefill(pre);
    Instance& dec = decode_[rec.decode_instance];
    dec.ready.push_back(r);
    if (!dec.busy) start_decode_iteration(dec);
  }

  // ---- Decode (disaggregated) -----------------------------------------------
  void join_running(Instance& inst, int r) {
    result_.records[r].decode_start = q_.now();
    inst.running.push_back(r);
    inst.running_kv_tokens += static_cast<double>(specs_[r].input_tokens + state_[r].generated);
  }

  void start_decode_iteration(Instance& inst) {
    while (!inst.ready.empty() && static_cast<std::int64_t>(inst.running.size()) < inst.pool->max_batch_size) {
      join_running(inst, inst.ready.front());
      inst.ready.pop_front();
    }
    if (inst.running.empty()) return;
    const BatchStats& stats = decode_stats(inst);
    inst.batch_decode = inst.running;
    const SimTime duration = batch_time(inst, stats);
    begin_batch(inst, duration, static_cast<std::int64_t>(inst.running.size()), stats.new_tokens);
    q_.schedule_after(duration, [this, &inst] {
      advance_decodes(inst, finished_now_);
      for (int r : finished_now_) finish(r);
      try_admit_transfers(inst);
      end_batch(inst);
      start_decode_iteration(inst);
    });
  }

  // The running requests' decode step, as inst.batch_stats (KV: prompt + tokens so far).
  BatchStats& decode_stats(Instance& inst) const {
    BatchStats& stats = inst.batch_stats;
    stats.clear();
    if (stats.keep_seqs) {
      for (int r : inst.running) stats.add({1, specs_[r].input_tokens + state_[r].generated - 1});
      return stats;
    }
    const auto n = static_cast<std::int64_t>(inst.running.size());
    stats.new_tokens = n;
    stats.logit_rows = n;
    stats.decode_seqs = n;
    stats.decode_kv_tokens = inst.running_kv_tokens;
    return stats;
  }

  // Every request of the finished iteration emits one token; those now done
  // are put in `finished` (cleared first). The caller calls finish() on them
  // once the step's state is complete: in a closed loop, finish() brings the
  // next arrival, and the router must see post-step loads.
  void advance_decodes(Instance& inst, std::vector<int>& finished) {
    finished.clear();
    const SimTime now = q_.now();
    // Requests that also decoded in the previous iteration share one gap, so
    // equal consecutive gaps go to the histogram as one weighted entry.
    SimTime run_gap = -1;
    std::uint64_t run_length = 0;
    for (int r : inst.batch_decode) {
      auto& st = state_[r];
      auto& rec = result_.records[r];
      const SimTime gap = now - st.last_token;
      if (gap != run_gap) {
        if (run_length > 0) result_.tbt.add(run_gap, run_length);
        run_gap = gap;
        run_length = 0;
      }
      ++run_length;
      rec.max_tbt = std::max(rec.max_tbt, gap);
      if (st.generated == 1) rec.first_tbt = gap;
      st.last_token = now;
      ++st.generated;
    }
    if (run_length > 0) result_.tbt.add(run_gap, run_length);
    // One token each, added once after the loop: in it, the stores through
    // `st` and `rec` kept the compiler from holding these sums in registers
    // (a store-to-load chain per request, ~45% of this function's samples). Exact: the
    // KV sum holds whole numbers far below 2^53.
    const auto stepped = static_cast<std::int64_t>(inst.batch_decode.size());
    inst.running_kv_tokens += static_cast<double>(stepped);
    inst.load_tokens -= stepped;
    auto done = [&](int r) { return state_[r].generated >= specs_[r].output_tokens; };
    for (int r : inst.batch_decode) {
      if (!done(r)) continue;
      inst.running_kv_tokens -= static_cast<double>(specs_[r].input_tokens + state_[r].generated);
      inst.load_tokens -= specs_[r].input_tokens;
      change_blocks(inst, -state_[r].decode_blocks);
      state_[r].decode_blocks = 0;
    }
    inst.running.erase(std::remove_if(inst.running.begin(), inst.running.end(), done), inst.running.end());
    for (int r : inst.batch_decode)
      if (done(r)) finished.push_back(r);
    inst.batch_decode.clear();
  }

  // ---- Colocated ------------------------------------------------------------
  // Admits the head of the waiting queue if memory and the running cap allow.
  bool admit_colocated(Instance& inst) {
    const PoolConfig& p = *inst.pool;
    if (inst.waiting.empty()) return false;
    const auto active = static_cast<std::int64_t>(inst.running.size() + inst.prefilling.size());
    if (active >= p.max_batch_size) return false;
    const int r = inst.waiting.front();
    const std::int64_t blocks =
        blocks_for(static_cast<std::int64_t>(specs_[r].input_tokens) + specs_[r].output_tokens, p.block_tokens);
    if (!has_blocks(inst, blocks)) return false;
    inst.waiting.pop_front();
    change_blocks(inst, blocks);
    state_[r].decode_blocks = blocks;
    inst.prefilling.push_back(r);
    return true;
  }

  void start_colocated_step(Instance& inst) {
    const PoolConfig& p = *inst.pool;
    inst.batch_prefill.clear();
    inst.batch_chunk.clear();
    inst.batch_decode.clear();
    BatchStats& stats = inst.batch_stats;
    stats.clear();
    std::int64_t prompt_tokens = 0;
    if (p.policy == ColocatedPolicy::kPrefillPriority) {
      // Waiting prompts run first, as a prefill-only batch; decodes stall meanwhile.
      while (static_cast<std::int64_t>(inst.prefilling.size()) < p.max_batch_requests && !inst.waiting.empty()) {
        const std::int64_t in = specs_[inst.waiting.front()].input_tokens;
        if (!inst.prefilling.empty() && prompt_tokens + in > p.max_batch_tokens) break;
        if (!admit_colocated(inst)) break;
        prompt_tokens += in;
      }
      for (int r : inst.prefilling) {
        inst.batch_prefill.push_back(r);
        inst.batch_chunk.push_back(specs_[r].input_tokens);
        stats.add({specs_[r].input_tokens, 0});
      }
      if (inst.batch_prefill.empty()) {
        for (int r : inst.running) inst.batch_decode.push_back(r);
        decode_stats(inst);
      }
    } else {
      // Sarathi-style: every running request decodes one token; the rest of
      // the token budget goes to prompt chunks, oldest first.
      for (int r : inst.running) inst.batch_decode.push_back(r);
      decode_stats(inst);
      std::int64_t budget = p.chunk_tokens - static_cast<std::int64_t>(inst.running.size());
      std::size_t k = 0;
      while (budget > 0) {
        if (k == inst.prefilling.size() && !admit_colocated(inst)) break;
        const int r = inst.prefilling[k++];
        const std::int64_t left = specs_[r].input_tokens - state_[r].prefilled;
        const std::int64_t chunk = std::min(left, budget);
        inst.batch_prefill.push_back(r);
        inst.batch_chunk.push_back(chunk);
        stats.add({chunk, state_[r].prefilled}, chunk == left);
        budget -= chunk;
        prompt_tokens += chunk;
      }
    }
    if (inst.batch_prefill.empty() && inst.batch_decode.empty()) return;  // idle
    for (int r : inst.batch_prefill)
      if (result_.records[r].prefill_start < 0) result_.records[r].prefill_start = q_.now();
    const SimTime duration = batch_time(inst, stats);
    begin_batch(inst, duration, static_cast<std::int64_t>(inst.batch_prefill.size() + inst.batch_decode.size()),
                stats.new_tokens);
    q_.schedule_after(duration, [this, &inst] { on_colocated_step_done(inst); });
  }

  void on_colocated_step_done(Instance& inst) {
    advance_decodes(inst, finished_now_);
    std::vector<int> completed;
    for (std::size_t i = 0; i < inst.batch_prefill.size(); ++i) {
      const int r = inst.batch_prefill[i];
      state_[r].prefilled += inst.batch_chunk[i];
      inst.load_tokens -= inst.batch_chunk[i];
      if (state_[r].prefilled == specs_[r].input_tokens) completed.push_back(r);
    }
    for (int r : completed) {
      inst.prefilling.erase(std::find(inst.prefilling.begin(), inst.prefilling.end(), r));
      emit_first_token(r);
      if (specs_[r].output_tokens == 1) {
        inst.load_tokens -= 1;
        change_blocks(inst, -state_[r].decode_blocks);
        state_[r].decode_blocks = 0;
        finished_now_.push_back(r);
      } else {
        inst.load_tokens -= 1;
        inst.load_tokens += specs_[r].input_tokens;  // advance_decodes subtracts it at the end
        join_running(inst, r);
      }
    }
    for (int r : finished_now_) finish(r);  // still busy: an arrival here only queues
    end_batch(inst);
    start_colocated_step(inst);
  }

  // ---- Batches --------------------------------------------------------------
  static const char* pool_name(Role role) {
    return role == Role::kPrefill ? "prefill" : role == Role::kDecode ? "decode" : "colocated";
  }
  SimTime batch_time(const Instance& inst, const BatchStats& stats) {
    const double seconds = inst.pricer->seconds(stats);
    // A price past the clock's range (or NaN) comes from implausible inputs: a
    // profile's rate or factor, a table's latency. Converted, it would wrap.
    if (!(seconds >= 0 && seconds <= kMaxSimSeconds - ns_to_seconds(q_.now()))) {
      char price[32];
      std::snprintf(price, sizeof price, "%.3g", seconds);
      throw InputError(s_.file + ": $.cluster." + pool_name(inst.role),
                       std::string("a batch the ") + inst.cost->name() + " cost model priced at " + price +
                           " s would end past the simulated clock's 1e9 s: check GPU \"" + inst.pool->gpu.name +
                           "\"'s profile (rates, efficiency factors) or measured tables");
    }
    const SimTime t = std::max<SimTime>(seconds_to_ns(seconds), 1);  // time must advance
    if (opt_.on_batch) {
      BatchRecord rec;
      rec.pool = pool_name(inst.role);
      rec.instance = inst.index;
      rec.start = q_.now();
      rec.duration = t;
      rec.stats = stats;
      opt_.on_batch(rec);
    }
    return t;
  }
  void begin_batch(Instance& inst, SimTime duration, std::int64_t requests, std::int64_t tokens) {
    inst.busy = true;
    inst.busy_ns += duration;
    ++inst.batches;
    inst.batch_requests += requests;
    inst.batch_tokens += tokens;
  }
  void end_batch(Instance& inst) { inst.busy = false; }

  PoolStats pool_stats(std::vector<Instance>& pool) {
    PoolStats st;
    if (pool.empty()) return st;
    const PoolConfig& p = *pool.front().pool;
    st.instances = static_cast<int>(pool.size());
    st.gpus = p.gpus();
    st.kv_capacity_tokens = pool.front().capacity_blocks * p.block_tokens;
    for (auto& inst : pool) {
      change_blocks(inst, 0);  // closes the time integral at the end time
      PDSIM_CHECK(inst.used_blocks == 0, "KV blocks not returned at the end of the run");
      PDSIM_CHECK(inst.load_tokens == 0, "router load not returned to zero at the end of the run");
      st.busy_s += ns_to_seconds(inst.busy_ns);
      st.batches += inst.batches;
      st.batch_requests += inst.batch_requests;
      st.batch_tokens += inst.batch_tokens;
      const double cap = static_cast<double>(inst.capacity_blocks);
      st.kv_peak_fraction = std::max(st.kv_peak_fraction, static_cast<double>(inst.peak_blocks) / cap);
      st.kv_fraction_s += inst.block_ns * 1e-9 / cap;
    }
    return st;
  }

  const Scenario& s_;
  const std::vector<RequestSpec>& specs_;
  const SimOptions& opt_;
  EventQueue q_;
  std::vector<ReqState> state_;
  SimResult result_;
  std::shared_ptr<RealTimings> timings_;  // real-kernel timings file, saved after a complete run
  std::unique_ptr<CostModel> prefill_cost_, decode_cost_, colocated_cost_;
  std::vector<Instance> prefill_, decode_, colocated_;
  std::vector<std::unique_ptr<SharedLink>> links_;
  std::vector<std::unique_ptr<BatchPricer>> pricers_;  // one per pool
  std::vector<int> finished_now_;  // scratch: requests done in the step being completed
  std::size_t rr_prefill_ = 0, rr_decode_ = 0;
  std::size_t finished_ = 0;
  bool closed_loop_ = false;
  std::size_t next_closed_ = 0;
};

}  // namespace

SimResult simulate(const Scenario& scenario, const std::vector<RequestSpec>& requests, const SimOptions& options) {
  Engine engine(scenario, requests, options);
  return engine.run();
}

}  // namespace pdsim
