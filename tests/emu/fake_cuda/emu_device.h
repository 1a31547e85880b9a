// emu::Device: runs a CUDA kernel's device code on the host, one block at a
// time, each thread of the block a fiber on the calling OS thread
// (tests/emu only; the fake cuda_runtime.h next to this maps the device API
// onto it). Fibers rather than OS threads: a warp shuffle or __syncthreads is
// a cooperative switch (makecontext starts a fiber, _setjmp/_longjmp switch:
// no system call) instead of a futex wake-up per thread, so a whole ragged
// batch runs in well under a second on one core.
//
// Rules it enforces (each a launch error, see error()):
//  - a warp shuffle takes mask 0xffffffff and completes only when every lane
//    of the warp has reached a shuffle: one that only some lanes reach
//    (lane-divergent control flow) leaves them waiting, reported as a
//    deadlock or as a lane exiting while its warp waits (lanes that reach
//    different shuffle sites equally often are not told apart: there is no
//    call-site identity; the exchanged values then are wrong, which the
//    comparison with a reference sees);
//  - __syncthreads waits for every live thread of the block (exited threads
//    count as arrived, as on sm_70+); threads waiting at barriers that can
//    never complete (some at a shuffle, some at __syncthreads) are a deadlock;
//  - __ldg of 16 bytes must be 16-byte aligned and, once the test registered
//    its buffers (allow_reads), inside one of them;
//  - cp.async is asynchronous (async_copy_16 and the calls after it): a copy
//    reads its source when issued and lands in shared memory only when the
//    issuing thread waits for its group (cp.async.wait_group N completes all
//    but the newest N committed groups), and a shared read through ldmatrix
//    (shared_read_16) is checked against the copies, per 16-byte chunk, as
//    compute-sanitizer's racecheck would: reading a chunk whose copy has not
//    landed (a missing wait), reading a chunk another thread's copy landed in
//    since the last __syncthreads (a missing barrier; same warp included: a
//    wait orders only the issuing thread), issuing a copy into a chunk another
//    warp read since the last __syncthreads or that a copy still in flight
//    targets (overwriting a stage in use), or exiting with copies in flight.
//    The checks are by barrier interval, not by the emulator's run order, so
//    a hazard is found whichever warp the emulator happens to run first.
// Run order, the most adversarial to a missing barrier: a warp whose
// collective completes runs on ahead of every other warp, so each warp runs
// from one __syncthreads to the next before the next warp starts; warps go
// in index order in even blocks and in reverse in odd ones (threads too: at
// the start, at each barrier release and at each warp collective); blocks
// run in a fixed pseudo-random order (CUDA promises none). A kernel is
// correct under any order. With a __syncthreads missing between warp A's
// plain shared-memory writes and warp B's reads, B runs first in one of the
// two warp orders and reads poisoned data, or data of the block run before
// it (static __shared__ is not re-poisoned; shuffled, that block rarely
// shares the inputs); a write over data another warp still has to read
// lands first in one of them. So a test over several blocks catches it by
// its results (no race check covers plain accesses).
// What it does not model: timing, the memory model for plain shared-memory
// accesses (a block's threads see each other's plain writes at once, without
// the fences hardware needs, and no race check covers them),
// independent thread scheduling inside a warp beyond the shuffle rule, bank
// conflicts, register limits; static __shared__ memory is not re-poisoned
// between blocks (dynamic shared memory is). Device code must not throw (an exception cannot leave a fiber), so
// tests check results after launch() returns.
// Under AddressSanitizer (-fsanitize=address) every switch is announced to
// it (the fiber API of sanitizer/common_interface_defs.h) and the fiber
// stacks are unpoisoned before each block, so the kernels' device code runs
// checked for out-of-bounds and use-after-free accesses like any host code;
// dynamic shared memory past the launch's size is poisoned (a kernel using
// more than its launch gave it is an out-of-bounds access on a GPU too).
#pragma once
#include <setjmp.h>
#include <ucontext.h>
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#define EMU_ASAN_FIBERS 1
#endif

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <string>
#include <type_traits>
#include <unordered_map>
#include <utility>
#include <vector>

namespace emu {

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

}  // namespace emu

using dim3 = emu::Dim3;
// The CUDA built-ins, per OS thread: the emulator sets threadIdx before it
// resumes a fiber, and the rest at each block's start.
inline thread_local emu::Dim3 threadIdx, blockIdx, blockDim, gridDim;

namespace emu {

class Device {
 public:
  // stack_bytes: each fiber's stack (the kernels here need a few KiB).
  explicit Device(std::size_t stack_bytes = 256 * 1024) : stack_bytes_(stack_bytes) {}
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  // Runs kernel() as every thread of every block of `grid` (blocks of block.x
  // threads; 1-D blocks only), blocks in the shuffled order above. Returns
  // false at the first broken rule (error() says which); later blocks do not run.
  // dynamic_smem_bytes: the launch's dynamic shared memory (the third <<< >>>
  // argument), NaN-poisoned (all bits set) before each block.
  template <class Kernel>
  bool launch(Dim3 grid, Dim3 block, Kernel&& kernel, std::size_t dynamic_smem_bytes = 0) {
    using K = std::remove_reference_t<Kernel>;
    body_ = [](void* k) { (*static_cast<K*>(k))(); };
    body_arg_ = const_cast<void*>(static_cast<const void*>(&kernel));
    dyn_smem_bytes_ = dynamic_smem_bytes;
#ifdef EMU_ASAN_FIBERS
    ASAN_UNPOISON_MEMORY_REGION(dyn_smem_.data(), dyn_smem_.size() * 16);
#endif
    if (dyn_smem_.size() * 16 < dynamic_smem_bytes) dyn_smem_.resize((dynamic_smem_bytes + 15) / 16);
#ifdef EMU_ASAN_FIBERS
    // Past this launch's size is out of bounds, though the buffer kept from a larger launch goes on.
    ASAN_POISON_MEMORY_REGION(reinterpret_cast<char*>(dyn_smem_.data()) + dynamic_smem_bytes,
                              dyn_smem_.size() * 16 - dynamic_smem_bytes);
#endif
    return run_grid(grid, block);
  }

  // Registers [p, p + bytes) as readable by __ldg; with none registered, loads
  // are checked for alignment only.
  void allow_reads(const void* p, std::size_t bytes) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    readable_.push_back({a, a + bytes});
  }
  void clear_reads() { readable_.clear(); }

  const std::string& error() const { return error_; }  // of the last launch; empty when it kept every rule
  long long loads() const { return loads_; }  // __ldg calls since the last reset_counters()
  void reset_counters() { loads_ = 0; }

  // The device running the calling fiber (the kernels' hooks reach it here).
  static Device& current() {
    if (t_current_ == nullptr) {
      std::fprintf(stderr, "emu::Device: device code called outside Device::launch\n");
      std::abort();
    }
    return *t_current_;
  }

  // -- hooks for the fake device API --

  // The running block's dynamic shared memory (16-byte aligned; nullptr when
  // the launch asked for none).
  void* dynamic_shared() { return dyn_smem_bytes_ == 0 ? nullptr : static_cast<void*>(dyn_smem_.data()); }

  // __syncthreads.
  void sync_block() {
    ++block_arrived_;
    if (block_arrived_ + done_ == n_) {
      release_block_barrier();  // the last to arrive goes on without a switch
      return;
    }
    lanes_[cur_].state = State::kBlockWait;
    wait();
  }

  // One lane's part of a warp shuffle: publishes `bits`, waits for the whole
  // warp, returns lane src_lane's bits (src_lane modulo 32, as CUDA's width 32).
  std::uint64_t exchange(unsigned mask, std::uint64_t bits, int src_lane) {
    const int lane = cur_ % 32, w = cur_ / 32;
    const int warp_lanes = std::min(32, n_ - 32 * w);
    const unsigned want = warp_lanes == 32 ? 0xffffffffu : (1u << warp_lanes) - 1u;
    if (mask != want) fatal("warp " + std::to_string(w) + ": shuffle mask " + hex(mask) + ", the kernel's warps are full");
    Warp& wp = warps_[w];
    Lane& me = lanes_[cur_];
    // Two slot sets used alternately: a lane can run ahead to the next shuffle
    // (and write its slot) before a slower lane has read this one.
    const int buf = static_cast<int>(me.shuffles & 1);
    wp.slot[buf][lane] = bits;
    arrive_at_warp(w, warp_lanes);
    return wp.slot[buf][src_lane & 31];
  }

  // One lane's part of a warp-wide all-gather (the fake ldmatrix and mma.sync
  // are built on it): publishes `n` <= kGatherWords words, waits for the whole
  // warp (same rules as exchange), and copies every lane's words into
  // all[lane][0 .. n).
  static constexpr int kGatherWords = 8;
  void gather(unsigned mask, const std::uint64_t* words, int n, std::uint64_t (*all)[kGatherWords]) {
    const int lane = cur_ % 32, w = cur_ / 32;
    const int warp_lanes = std::min(32, n_ - 32 * w);
    if (mask != 0xffffffffu || warp_lanes != 32)
      fatal("warp " + std::to_string(w) + ": warp-collective matrix ops need mask 0xffffffff and a full warp");
    Warp& wp = warps_[w];
    Lane& me = lanes_[cur_];
    const int buf = static_cast<int>(me.shuffles & 1);  // shares exchange's slot alternation
    for (int i = 0; i < n; ++i) wp.wide[buf][lane][i] = words[i];
    arrive_at_warp(w, warp_lanes);
    for (int l = 0; l < 32; ++l)
      for (int i = 0; i < n; ++i) all[l][i] = wp.wide[buf][l][i];
  }

  // cp.async of 16 bytes into shared memory: src (nullptr for zero-fill) is
  // read now, dst written when this thread's wait completes the group.
  void async_copy_16(void* dst, const void* src) {
    AsyncCopy c;
    c.dst = static_cast<unsigned char*>(dst);
    if (src != nullptr)
      std::memcpy(c.data, src, 16);
    else
      std::memset(c.data, 0, 16);
    SharedChunk& ch = shadow_[chunk_of(dst)];
    const int warp = cur_ / 32;
    if (ch.pending >= 0)
      report("cp.async into shared " + hex(chunk_of(dst) * 16) + " while thread " + std::to_string(ch.pending) +
             "'s cp.async into it is in flight");
    else if (ch.read_epoch == epoch_ && (ch.read_warps & ~(1u << warp)) != 0)
      report("cp.async overwrites shared " + hex(chunk_of(dst) * 16) + ", read by warp " +
             std::to_string(lowest_bit(ch.read_warps & ~(1u << warp))) + " since the last __syncthreads");
    ch.pending = cur_;
    lanes_[cur_].open.push_back(c);
  }
  void async_commit() {
    Lane& me = lanes_[cur_];
    me.groups.push_back(std::move(me.open));
    me.open.clear();
  }
  // cp.async.wait_group n: this thread's committed groups but the newest n land.
  void async_wait(int n) {
    Lane& me = lanes_[cur_];
    while (static_cast<int>(me.groups.size()) > n) {
      for (const AsyncCopy& c : me.groups.front()) {
        std::memcpy(c.dst, c.data, 16);
        SharedChunk& ch = shadow_[chunk_of(c.dst)];
        ch.pending = -1;
        ch.writer = cur_;
        ch.write_epoch = epoch_;
      }
      me.groups.pop_front();
    }
  }
  // A 16-byte shared-memory read by a fake collective (ldmatrix's row).
  void shared_read_16(const void* p, const char* what) {
    SharedChunk& ch = shadow_[chunk_of(p)];
    if (ch.pending >= 0)
      report(std::string(what) + " reads shared " + hex(chunk_of(p) * 16) + " before thread " +
             std::to_string(ch.pending) + "'s cp.async into it landed (no cp.async.wait_group for it, or no __syncthreads after that)");
    else if (ch.writer >= 0 && ch.writer != cur_ && ch.write_epoch == epoch_)
      report(std::string(what) + " reads shared " + hex(chunk_of(p) * 16) + ", which thread " +
             std::to_string(ch.writer) + "'s cp.async filled since the last __syncthreads");
    if (ch.read_epoch != epoch_) {
      ch.read_epoch = epoch_;
      ch.read_warps = 0;
    }
    ch.read_warps |= 1u << (cur_ / 32);
  }

  // A broken rule found by a fake device function (recorded; the launch goes on and returns false).
  void report(const std::string& msg) { note("thread " + std::to_string(cur_) + " of block " + block_name() + ": " + msg); }

  // A plain vector access (PDSIM_CHECK_ALIGNED, kernels/cuda/ops.cuh): on a GPU a
  // misaligned one faults; here it is recorded and the launch returns false.
  void check_aligned(const void* p, std::size_t align) {
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    if (a % align != 0)
      note("thread " + std::to_string(cur_) + " of block " + block_name() + ": " + std::to_string(align) +
           "-byte access at " + hex(a) + " is not " + std::to_string(align) + "-byte aligned");
  }

  // __ldg: alignment, and inside a registered buffer. Returns false (the
  // error recorded) for a load that must not touch memory.
  bool check_load(const void* p, std::size_t bytes, std::size_t align) {
    ++loads_;
    const auto a = reinterpret_cast<std::uintptr_t>(p);
    if (a % align != 0) {
      note("thread " + std::to_string(cur_) + " of block " + block_name() + ": " + std::to_string(bytes) +
           "-byte load at " + hex(a) + " is not " + std::to_string(align) + "-byte aligned");
      return false;
    }
    if (readable_.empty()) return true;
    for (const auto& r : readable_)
      if (a >= r.first && a + bytes <= r.second) return true;
    note("thread " + std::to_string(cur_) + " of block " + block_name() + ": load at " + hex(a) +
         " is outside every registered buffer");
    return false;
  }

 private:
  enum class State { kReady, kWarpWait, kBlockWait, kDone };
  struct AsyncCopy {
    unsigned char* dst;
    unsigned char data[16];
  };
  // Race-check state of one 16-byte chunk of shared memory (see the rules above).
  struct SharedChunk {
    int pending = -1;  // the thread whose cp.async into it has not landed
    int writer = -1;   // the thread whose cp.async landed last, in write_epoch
    std::uint64_t write_epoch = 0;
    std::uint64_t read_epoch = ~0ull;  // the barrier interval of read_warps
    std::uint32_t read_warps = 0;      // warps that read it in read_epoch (bit w)
  };
  static std::uintptr_t chunk_of(const void* p) { return reinterpret_cast<std::uintptr_t>(p) / 16; }
  static int lowest_bit(std::uint32_t m) {
    int i = 0;
    while ((m & 1u) == 0) m >>= 1, ++i;
    return i;
  }
  struct Lane {
    ucontext_t ctx;  // its stack and entry point, used to start it
    jmp_buf jb;      // where it resumes once started (see resume())
    bool started = false;
    State state = State::kReady;
    std::uint64_t shuffles = 0;  // shuffles this lane has entered (picks its slot set)
    std::vector<AsyncCopy> open;              // cp.async issued since the last commit
    std::deque<std::vector<AsyncCopy>> groups;  // committed, not yet landed, oldest first
  };
  struct Warp {
    int arrived = 0;
    std::uint64_t slot[2][32] = {};
    std::uint64_t wide[2][32][kGatherWords] = {};  // gather's slots
  };

  static std::string hex(std::uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "0x%llx", static_cast<unsigned long long>(v));
    return buf;
  }
  static std::string block_name() {
    char buf[64];
    std::snprintf(buf, sizeof buf, "(%u,%u,%u)", blockIdx.x, blockIdx.y, blockIdx.z);
    return buf;
  }
  // A recoverable error: the first is kept, the launch goes on and returns false.
  void note(const std::string& msg) {
    if (error_.empty()) error_ = msg;
    failed_ = true;
  }
  // An unrecoverable one (the block cannot go on): back to the scheduler,
  // never to resume this fiber.
  // The message is moved into a member: the caller's frame is never unwound
  // (no destructors run past a longjmp), so a string it still owned would
  // leak. The member is emptied first: a move assignment may hand its old
  // buffer to the source.
  [[noreturn]] void fatal(std::string&& msg) {
    std::string().swap(fatal_message_);
    fatal_message_ = std::move(msg);
    note(fatal_message_);
    aborted_ = true;
    to_scheduler();  // an aborted block's fibers are not resumed
  }

  // The running lane has published its slot of warp w's collective: the last
  // of the warp's lanes to arrive wakes the others and goes on without a
  // switch; the others wait.
  void arrive_at_warp(int w, int warp_lanes) {
    Warp& wp = warps_[w];
    ++lanes_[cur_].shuffles;
    if (++wp.arrived == warp_lanes) {
      wp.arrived = 0;
      // Ahead of every other warp's fibers: a warp runs on as a unit until
      // it waits at __syncthreads (or exits), as if the others lagged.
      for (int k = warp_lanes - 1; k >= 0; --k) {
        const int l = in_run_order(k, warp_lanes);
        if (32 * w + l != cur_) push_ready_front(32 * w + l);
      }
    } else {
      lanes_[cur_].state = State::kWarpWait;
      wait();
    }
  }

  // The k-th of n threads (or lanes) in the running block's order.
  int in_run_order(int k, int n) const { return reverse_ ? n - 1 - k : k; }

  void push_ready(int i) {
    lanes_[i].state = State::kReady;
    ready_.push_back(i);
  }
  void push_ready_front(int i) {
    lanes_[i].state = State::kReady;
    ready_.push_front(i);
  }
  int pop_ready() {
    if (ready_.empty()) return -1;
    const int i = ready_.front();
    ready_.pop_front();
    return i;
  }
  void set_current(int i) {
    cur_ = i;
    threadIdx = Dim3{static_cast<unsigned>(i), 0u, 0u};
  }

  // The running fiber waits: switch straight to the next ready fiber, or to
  // the scheduler when none is ready (it tells a finished block from a deadlock).
  void wait() {
    Lane& me = lanes_[cur_];
    if (_setjmp(me.jb) != 0) {  // resumed
      switched();
      return;
    }
    const int next = pop_ready();
    if (next < 0) to_scheduler();
    set_current(next);
    resume(next);
  }

  // Switches to fiber i (the caller has saved itself, or is done): a started
  // fiber by _longjmp to where it waits, a new one by setcontext. _setjmp /
  // _longjmp save and restore no signal mask, so a switch is no system call
  // (swapcontext's rt_sigprocmask per switch made the emulated tests 10x slower); the
  // emulator target builds with -U_FORTIFY_SOURCE, whose longjmp check
  // refuses jumps between stacks.
  [[noreturn]] void resume(int i) {
    Lane& l = lanes_[i];
    switching_to(stacks_.get() + static_cast<std::size_t>(i) * stack_bytes_, stack_bytes_);
    if (l.started) _longjmp(l.jb, 1);
    l.started = true;
    setcontext(&l.ctx);
    std::abort();  // setcontext returns only on failure
  }
  [[noreturn]] void to_scheduler() {
    switching_to(sched_stack_, sched_stack_bytes_);
    _longjmp(sched_jb_, 1);
  }

  // AddressSanitizer's fiber protocol: announce the stack about to run
  // (switching_to), confirm on arrival (switched). The first arrival from the
  // scheduler learns the scheduler's stack, for the switches back to it.
  void switching_to([[maybe_unused]] const void* stack, [[maybe_unused]] std::size_t bytes) {
#ifdef EMU_ASAN_FIBERS
    __sanitizer_start_switch_fiber(nullptr, stack, bytes);
#endif
  }
  void switched() {
#ifdef EMU_ASAN_FIBERS
    const void* from = nullptr;
    std::size_t from_bytes = 0;
    __sanitizer_finish_switch_fiber(nullptr, &from, &from_bytes);
    if (from_scheduler_) {
      sched_stack_ = from;
      sched_stack_bytes_ = from_bytes;
      from_scheduler_ = false;
    }
#endif
  }

  void release_block_barrier() {
    block_arrived_ = 0;
    ++epoch_;
    for (int k = 0; k < n_; ++k) {
      const int i = in_run_order(k, n_);
      if (lanes_[i].state == State::kBlockWait) push_ready(i);
    }
  }

  static void trampoline() {
    Device& d = current();
    d.switched();
    d.body_(d.body_arg_);
    d.finish();
  }
  // The running fiber has returned from the kernel.
  void finish() {
    const int w = cur_ / 32;
    Lane& me = lanes_[cur_];
    me.state = State::kDone;
    ++done_;
    std::size_t in_flight = me.open.size();
    for (const auto& g : me.groups) in_flight += g.size();
    if (in_flight > 0) report("exited with " + std::to_string(in_flight) + " cp.async copies in flight");
    if (warps_[w].arrived > 0)
      fatal("block " + block_name() + ": thread " + std::to_string(cur_) +
            " exited while lanes of its warp wait at a shuffle");
    if (block_arrived_ > 0 && block_arrived_ + done_ == n_) release_block_barrier();
    const int next = pop_ready();
    if (next < 0) to_scheduler();
    set_current(next);
    resume(next);
  }

  bool run_grid(Dim3 grid, Dim3 block) {
    if (block.y != 1 || block.z != 1 || block.x < 1 || block.x > 1024) {
      note("emu::Device runs 1-D blocks of 1..1024 threads");
      return false;
    }
    n_ = static_cast<int>(block.x);
    if (stack_threads_ < n_) {
      stacks_.reset(new char[static_cast<std::size_t>(n_) * stack_bytes_]);
      stack_threads_ = n_;
    }
    lanes_.assign(n_, Lane{});
    warps_.assign((n_ + 31) / 32, Warp{});
    Device* const saved = t_current_;
    t_current_ = this;
    failed_ = aborted_ = false;
    error_.clear();
    gridDim = grid;
    blockDim = block;
    // Fisher-Yates with a fixed LCG: the same order every run (tests are deterministic).
    const std::uint64_t blocks = static_cast<std::uint64_t>(grid.x) * grid.y * grid.z;
    std::vector<std::uint64_t> order(blocks);  // linear block indices in run order
    for (std::uint64_t i = 0; i < blocks; ++i) order[i] = i;
    std::uint64_t state = 0x9e3779b97f4a7c15ull ^ blocks;
    for (std::uint64_t i = blocks; i > 1; --i) {
      state = state * 6364136223846793005ull + 1442695040888963407ull;
      std::swap(order[i - 1], order[(state >> 33) % i]);
    }
    for (std::uint64_t k = 0; k < blocks && !failed_; ++k) {
      const std::uint64_t b = order[k];
      blockIdx = Dim3{static_cast<unsigned>(b % grid.x), static_cast<unsigned>(b / grid.x % grid.y),
                      static_cast<unsigned>(b / grid.x / grid.y)};
      reverse_ = k % 2 == 1;
      run_block();
    }
    t_current_ = saved;
    return !failed_;
  }

  // A new block's state, its fibers ready to start (apart from run_block,
  // whose _setjmp makes GCC suspect every local of it).
  void start_block() {
    if (dyn_smem_bytes_ > 0) std::memset(static_cast<void*>(dyn_smem_.data()), 0xff, dyn_smem_bytes_);
#ifdef EMU_ASAN_FIBERS
    // Frames of fibers that never returned (finished, or aborted) left their redzones poisoned.
    ASAN_UNPOISON_MEMORY_REGION(stacks_.get(), static_cast<std::size_t>(n_) * stack_bytes_);
#endif
    ready_.clear();
    done_ = block_arrived_ = 0;
    epoch_ = 0;
    shadow_.clear();
    for (auto& w : warps_) w.arrived = 0;
    for (int k = 0; k < n_; ++k) {
      const int i = in_run_order(k, n_);
      Lane& l = lanes_[i];
      l.shuffles = 0;
      l.open.clear();
      l.groups.clear();
      getcontext(&l.ctx);
      l.ctx.uc_stack.ss_sp = stacks_.get() + static_cast<std::size_t>(i) * stack_bytes_;
      l.ctx.uc_stack.ss_size = stack_bytes_;
      l.ctx.uc_link = nullptr;  // the trampoline never returns (finish() switches away)
      l.started = false;
      makecontext(&l.ctx, &Device::trampoline, 0);
      push_ready(i);
    }
  }

  void run_block() {
    start_block();
    while (!aborted_) {
      const int next = pop_ready();
      if (next < 0) break;
      set_current(next);
      if (_setjmp(sched_jb_) == 0) {
        from_scheduler_ = true;
        resume(next);
      }
      switched();  // back here when no fiber is ready
    }
    if (!aborted_ && done_ != n_) {
      int at_shuffle = 0, at_sync = 0;
      for (const auto& l : lanes_) {
        at_shuffle += l.state == State::kWarpWait;
        at_sync += l.state == State::kBlockWait;
      }
      note("block " + block_name() + " deadlocked: " + std::to_string(at_shuffle) + " threads wait at a shuffle, " +
           std::to_string(at_sync) + " at __syncthreads, " + std::to_string(done_) + " exited (divergent shuffles or barriers)");
    }
  }

  std::size_t stack_bytes_;
  std::unique_ptr<char[]> stacks_;
  int stack_threads_ = 0;
  std::vector<Lane> lanes_;
  std::vector<Warp> warps_;
  std::deque<int> ready_;  // ready fibers (each at most once), next first
  jmp_buf sched_jb_;  // the scheduler loop in run_block
  const void* sched_stack_ = nullptr;  // its stack, for AddressSanitizer (see switched())
  std::size_t sched_stack_bytes_ = 0;
  bool from_scheduler_ = false;
  int n_ = 0, cur_ = 0, done_ = 0, block_arrived_ = 0;
  bool failed_ = false, aborted_ = false;
  bool reverse_ = false;  // the running block runs its threads in reverse order (odd places)
  void (*body_)(void*) = nullptr;
  void* body_arg_ = nullptr;
  std::vector<std::pair<std::uintptr_t, std::uintptr_t>> readable_;
  std::string error_;
  std::string fatal_message_;  // see fatal()
  long long loads_ = 0;
  struct alignas(16) Chunk {
    unsigned char b[16];
  };
  std::vector<Chunk> dyn_smem_;  // dynamic shared memory, reused across launches
  std::size_t dyn_smem_bytes_ = 0;
  std::uint64_t epoch_ = 0;  // __syncthreads completed in the running block
  std::unordered_map<std::uintptr_t, SharedChunk> shadow_;  // by chunk_of, the running block's
  static inline thread_local Device* t_current_ = nullptr;
};

}  // namespace emu
