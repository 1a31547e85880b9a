// Attention kernels of the CUDA backend: causal prefill over a ragged batch and
// decode over a paged KV cache (flash-decoding). Storage T (bf16 or f32), fp32
// math. The CUDA-core kernels (prefill_attention_kernel and the shared-memory
// decode_attention_kernel, with their warp-level building block) live in
// attention_simt.cuh, the register decode kernel in decode_attention_regs.cuh,
// the mma.sync kernels in prefill_attention_mma.cuh and decode_attention_mma.cuh
// (their inline PTX in mma_sm80.cuh); tests/emu runs all of them on the host.
// This file holds every launcher and dispatch.
//
// Prefill also has a tensor-core kernel (prefill_attention_mma_kernel: bf16
// mma.sync m16n8k16, FlashAttention-2 style) for head_dim 64 and 128 on sm_80+,
// which launch_prefill_attention picks by default; the CUDA-core kernel stays
// the fallback for every other case. On Hopper (compute capability 9.0, in
// builds with sm_90a code) a wgmma kernel (prefill_attention_sm90.cu,
// FlashAttention-3 style) comes first for bf16 at head_dim 64 and 128.
// PDSIM_ATTENTION_KERNEL=simt forces the fallback, =mma / =wgmma demand that
// kernel (an error where it does not apply), unset or =auto picks (wgmma where
// it applies, else mma, else simt); so a GPU session can compare and bisect.
#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <type_traits>

#include "kernels/cuda/attention_simt.cuh"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/decode_attention_regs.cuh"
#include "kernels/cuda/decode_attention_mma.cuh"
#include "kernels/cuda/decode_reduce.cuh"
#include "kernels/cuda/decode_split.h"
#include "kernels/cuda/ops.cuh"
#include "kernels/cuda/prefill_attention_mma.cuh"
#include "kernels/cuda/prefill_attention_sm90.cuh"

namespace pdsim::kernels::cuda {
namespace {

// The CUDA-core kernels and their helpers (attention_simt.cuh).
using simt::kDecodeWarps;
using simt::kFull;
using simt::kLog2e;
using simt::kPrefillRows;
using simt::kPrefillWarps;
using simt::kTile;
using simt::decode_attention_kernel;
using simt::prefill_attention_kernel;

// ----------------------------------------------------------------- decode ---
// The pass-1 kernels share one split plan, workspace and pass 2:
// - decode_regs_kernel (decode_attention_regs.cuh), the default where it
//   applies (head_dim * sizeof(T) % 16 == 0, head_dim <= 256, heads/kv_heads
//   <= 8, 16-byte aligned tensors): K/V straight from HBM into registers with
//   16-byte loads, several tokens in flight per lane, no shared-memory staging
//   and no barrier in the main loop; decode is bandwidth-bound, so this is the
//   kernel that must reach the copy bandwidth.
// - decode_attention_kernel (attention_simt.cuh; CUDA-core, shared-memory tiles), the
//   fallback for every other shape: per 32-token tile it syncs, stages K and V
//   as fp32 and every warp re-reads the tile (~8x the HBM bytes in shared
//   memory traffic, no load/compute overlap).
// - decode_attention_mma_kernel (decode_attention_mma.cuh; tensor cores, bf16,
//   head_dim 64/128, up to 16 query heads per kv head): the default where it
//   applies on compute capability 9.x, where an H200 measured it faster than
//   the register kernel (below).
// PDSIM_DECODE_KERNEL (read at each launch) = auto | smem | regs |
// regs-scatter | mma picks, like PDSIM_ATTENTION_KERNEL for prefill.

int device_cc_major() {
  int dev = 0, major = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
  return major;
}

// Whether the current device is sm_80+ (cp.async, bf16 mma.sync); else sets *why.
bool device_is_sm80_plus(std::string* why) {
  const int major = device_cc_major();
  if (major >= 8) return true;
  *why = "the device is sm_" + std::to_string(major) + "x (it needs sm_80+)";
  return false;
}

// Pass 2 of split decode (every pass-1 kernel's launcher calls it): merges the splits.
template <class T>
void launch_decode_reduce(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  if (p.num_splits <= 1) return;
  decode_reduce_kernel<T><<<static_cast<unsigned>(p.batch) * p.heads, 128, 0, stream>>>(p);
  cudaCheckLaunch();
}

// PDSIM_DECODE_SPLIT_WAVES=0 (read at each launch, for measuring the plan
// without it) keeps plan_decode_split's split count; unset or 1 fits it to
// the pass-1 kernel's waves (fit_splits_to_waves).
bool decode_split_waves_enabled() {
  const char* e = std::getenv("PDSIM_DECODE_SPLIT_WAVES");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "1") == 0) return true;
  PDSIM_CUDA_REQUIRE(std::strcmp(e, "0") == 0, std::string("PDSIM_DECODE_SPLIT_WAVES must be 0 or 1, got '") + e + "'");
  return false;
}

// p with its split count fitted to the waves `kernel` runs in
// (fit_decode_split_to_waves: the kernel's resident blocks per SM x SMs, from
// the occupancy API, so it holds for whichever pass-1 kernel runs) and its
// workspace laid out for the new count (the backend's holds the plan's larger
// one). Call after set_smem: occupancy counts the opted-in shared memory.
template <class T, class Kernel>
DecodeAttentionParams<T> fit_splits_to_waves(DecodeAttentionParams<T> p, Kernel kernel, int threads,
                                             std::size_t smem) {
  if (p.num_splits <= 1 || !decode_split_waves_enabled()) return p;
  int dev = 0, sms = 0, resident = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  cudaCheck(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&resident, kernel, threads, smem));
  DecodeSplit plan;
  plan.num_splits = p.num_splits;
  plan.split_tokens = p.split_tokens;
  const DecodeSplit fitted = fit_decode_split_to_waves(plan, p.batch, p.heads, p.kv_heads, p.head_dim,
                                                       p.max_context_len, static_cast<long long>(resident) * sms);
  set_decode_split(p, fitted);
  return p;
}

// Shared-memory bytes above the 48 KiB default need an opt-in per kernel.
template <class Kernel>
void set_smem(Kernel kernel, std::size_t bytes) {
  int dev = 0, optin = 0;
  cudaCheck(cudaGetDevice(&dev));
  cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  // + the kernels' static shared memory (offs[32], 256 bytes).
  PDSIM_CUDA_REQUIRE(bytes + kTile * sizeof(long long) <= static_cast<std::size_t>(optin),
                     "attention needs " + std::to_string(bytes) + " bytes of shared memory, device allows " +
                         std::to_string(optin) + " (head_dim or heads/kv_heads too large)");
  // Static + dynamic must fit the 48 KiB default: count offs[] so dynamic sizes just under 48 KiB opt in too.
  if (bytes + kTile * sizeof(long long) > 48 * 1024)
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
}

int dims_per_lane(int hd) {
  PDSIM_CUDA_REQUIRE(hd >= 1 && hd <= 256, "head_dim must be in [1, 256], got " + std::to_string(hd));
  return simt::dims_per_lane(hd);
}

template <class T, int DPL>
void prefill_launch(const PrefillAttentionParams<T>& p, cudaStream_t stream) {
  const int hd = p.head_dim;
  const std::size_t smem = simt::prefill_smem_bytes(hd);
  auto kernel = prefill_attention_kernel<T, DPL>;
  set_smem(kernel, smem);
  const dim3 grid((p.max_seqlen + kPrefillRows - 1) / kPrefillRows, p.heads, p.num_seqs);
  kernel<<<grid, kPrefillWarps * 32, smem, stream>>>(p);
  cudaCheckLaunch();
}

// Which prefill kernel to run, from PDSIM_ATTENTION_KERNEL (read at every
// launch so a test or benchmark can switch it): unset/"auto" -> the wgmma
// kernel where it applies, else the mma kernel where it applies, else the
// CUDA-core one; "simt" -> always the CUDA-core one; "mma" / "wgmma" -> that
// kernel or an error saying why it does not apply.
enum class PrefillKernelChoice { kAuto, kSimt, kMma, kWgmma };
PrefillKernelChoice prefill_kernel_choice() {
  const char* e = std::getenv("PDSIM_ATTENTION_KERNEL");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return PrefillKernelChoice::kAuto;
  if (std::strcmp(e, "simt") == 0) return PrefillKernelChoice::kSimt;
  if (std::strcmp(e, "mma") == 0) return PrefillKernelChoice::kMma;
  if (std::strcmp(e, "wgmma") == 0) return PrefillKernelChoice::kWgmma;
  PDSIM_CUDA_REQUIRE(false, std::string("PDSIM_ATTENTION_KERNEL must be auto, wgmma, mma or simt, got '") + e + "'");
  return PrefillKernelChoice::kAuto;
}

template <class Cfg>
void prefill_mma_launch(const PrefillAttentionParams<bf16>& p, cudaStream_t stream) {
  auto kernel = prefill_attention_mma_kernel<Cfg>;
  set_smem(kernel, Cfg::kSmemBytes);  // > 48 KiB (head_dim 128: 68 KiB) opts in, checked against the device
  const dim3 grid((p.max_seqlen + Cfg::BM - 1) / Cfg::BM, p.heads, p.num_seqs);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmemBytes, stream>>>(p);
  cudaCheckLaunch();
}

// Launches the tensor-core prefill kernel and returns true where it applies
// (bf16, head_dim 64 or 128, sm_80+, 16-byte aligned tensors); else sets *why.
template <class T>
bool try_prefill_mma(const PrefillAttentionParams<T>& p, cudaStream_t stream, std::string* why) {
  if constexpr (!std::is_same_v<T, bf16>) {
    (void)p;
    (void)stream;
    *why = "tensors are f32 (it reads bf16)";
    return false;
  } else {
    if (!prefill_tensor_core_shape_ok(p, why)) return false;
    if (!device_is_sm80_plus(why)) return false;
    if (p.head_dim == 64)
      prefill_mma_launch<MmaPrefill64>(p, stream);
    else
      prefill_mma_launch<MmaPrefill128>(p, stream);
    return true;
  }
}

// The Hopper wgmma kernel (prefill_attention_sm90.cu, compiled only for
// sm_90a): launches it and returns true where it applies; else sets *why.
template <class T>
bool try_prefill_wgmma_any(const PrefillAttentionParams<T>& p, cudaStream_t stream, std::string* why) {
  if constexpr (!std::is_same_v<T, bf16>) {
    (void)p;
    (void)stream;
    *why = "tensors are f32 (it reads bf16)";
    return false;
  } else {
#if defined(PDSIM_HAVE_SM90A)
    return try_prefill_wgmma(p, stream, why);
#else
    (void)p;
    (void)stream;
    *why = "this build has no sm_90a code (CMAKE_CUDA_ARCHITECTURES lacks 90)";
    return false;
#endif
  }
}

template <class T, int DPL, int ROWS>
void decode_launch(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  const int hd = p.head_dim, group = p.heads / p.kv_heads;
  const std::size_t smem = simt::decode_smem_bytes(group, hd);
  auto kernel = decode_attention_kernel<T, DPL, ROWS>;
  set_smem(kernel, smem);
  const auto q = fit_splits_to_waves(p, kernel, kDecodeWarps * 32, smem);
  const dim3 grid(q.num_splits, q.kv_heads, q.batch);
  kernel<<<grid, kDecodeWarps * 32, smem, stream>>>(q);
  cudaCheckLaunch();
  launch_decode_reduce(q, stream);
}

template <class T, int DPL>
void decode_dispatch_rows(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  const int group = p.heads / p.kv_heads;
  PDSIM_CUDA_REQUIRE(group <= 8 * kDecodeWarps,
                     "decode attention supports heads/kv_heads <= 32, got " + std::to_string(group));
  switch (simt::decode_rows_per_warp(group)) {
    case 1: return decode_launch<T, DPL, 1>(p, stream);
    case 2: return decode_launch<T, DPL, 2>(p, stream);
    case 4: return decode_launch<T, DPL, 4>(p, stream);
    default: return decode_launch<T, DPL, 8>(p, stream);
  }
}

// Which decode kernel to run, from PDSIM_DECODE_KERNEL (read at every launch so
// a test or benchmark can switch it): unset/"auto" -> on compute capability
// 9.x the tensor-core kernel where it applies, then (there and elsewhere) the
// register kernel where it applies, else the shared-memory one. Why 9.x only:
// an H200 (2026-12-04, results/decode-mma-h200.md) ran it in 0.70 of the
// register kernel's time at the median of both Llama-3.1 decode tables, 0.55
// at 8 query heads per kv head; no sm_80/sm_89 device has run it.
// "smem" -> always the shared-memory one; "regs" -> the register kernel or an
// error saying why it does not apply;
// "regs-scatter" -> the register kernel with the scattered score reduction
// (groups of 5-8 query rows; an experiment, slower than "mma" on an H200:
// see decode_attention_regs.cuh), or an error saying why it does not apply;
// "mma" -> the tensor-core kernel (decode_attention_mma.cuh; auto's first
// choice on 9.x), or an error saying why it does not apply.
enum class DecodeKernelChoice { kAuto, kSmem, kRegs, kRegsScatter, kMma };
DecodeKernelChoice decode_kernel_choice() {
  const char* e = std::getenv("PDSIM_DECODE_KERNEL");
  if (e == nullptr || *e == '\0' || std::strcmp(e, "auto") == 0) return DecodeKernelChoice::kAuto;
  if (std::strcmp(e, "smem") == 0) return DecodeKernelChoice::kSmem;
  if (std::strcmp(e, "regs") == 0) return DecodeKernelChoice::kRegs;
  if (std::strcmp(e, "regs-scatter") == 0) return DecodeKernelChoice::kRegsScatter;
  if (std::strcmp(e, "mma") == 0) return DecodeKernelChoice::kMma;
  PDSIM_CUDA_REQUIRE(false,
                     std::string("PDSIM_DECODE_KERNEL must be auto, smem, regs, regs-scatter or mma, got '") + e + "'");
  return DecodeKernelChoice::kAuto;
}

template <class T, int TG, int VPL, int GB, bool Scatter>
void decode_regs_launch(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  auto kernel = decode_regs::decode_regs_kernel<T, TG, VPL, GB, Scatter>;
  const auto q = fit_splits_to_waves(p, kernel, decode_regs::kThreads, 0);
  const dim3 grid(q.num_splits, q.kv_heads, q.batch);
  kernel<<<grid, decode_regs::kThreads, 0, stream>>>(q);
  cudaCheckLaunch();
  launch_decode_reduce(q, stream);
}

// Launches the register decode kernel and returns true where it applies
// (head_dim * sizeof(T) a multiple of 16 bytes, head_dim <= 256, heads/kv_heads
// <= 8, q and the caches 16-byte aligned; with `scatter`, also what
// decode_regs::scatter_applies asks); else sets *why.
template <class T>
bool try_decode_regs(const DecodeAttentionParams<T>& p, cudaStream_t stream, bool scatter, std::string* why) {
  constexpr int E = 16 / sizeof(T);  // elements per 16-byte vector
  const int hd = p.head_dim, group = p.heads / p.kv_heads;
  if (hd % E != 0 || hd > 256) {
    *why = "head_dim is " + std::to_string(hd) + " (it needs head_dim <= 256 and head_dim * " +
           std::to_string(sizeof(T)) + " bytes a multiple of 16)";
    return false;
  }
  if (group > 8) {
    *why = "heads/kv_heads is " + std::to_string(group) + " (it holds at most 8 query rows per kv head)";
    return false;
  }
  const auto addr = reinterpret_cast<std::uintptr_t>(p.q) | reinterpret_cast<std::uintptr_t>(p.k_cache) |
                    reinterpret_cast<std::uintptr_t>(p.v_cache);
  if (addr % 16 != 0) {
    *why = "q, k_cache or v_cache is not 16-byte aligned";
    return false;
  }
  if (scatter && !decode_regs::scatter_applies<T>(hd, group)) {
    *why = "the scattered score reduction needs 5-8 query heads per kv head and head_dim * " +
           std::to_string(sizeof(T)) + " > 64 bytes (heads/kv_heads is " + std::to_string(group) +
           ", head_dim " + std::to_string(hd) + ")";
    return false;
  }
  decode_regs::dispatch<T>(hd, group, scatter, [&](auto tg, auto vpl, auto gb, auto sc) {
    decode_regs_launch<T, decltype(tg)::value, decltype(vpl)::value, decltype(gb)::value, decltype(sc)::value>(
        p, stream);
  });
  return true;
}

template <class Cfg>
void decode_mma_launch(const DecodeAttentionParams<bf16>& p, cudaStream_t stream) {
  auto kernel = decode_mma::decode_attention_mma_kernel<Cfg>;
  set_smem(kernel, Cfg::kSmemBytes);
  const auto q = fit_splits_to_waves(p, kernel, decode_mma::kThreads, Cfg::kSmemBytes);
  const dim3 grid(q.num_splits, q.kv_heads, q.batch);
  kernel<<<grid, decode_mma::kThreads, Cfg::kSmemBytes, stream>>>(q);
  cudaCheckLaunch();
  launch_decode_reduce(q, stream);
}

// Launches the tensor-core decode kernel and returns true where it applies
// (bf16, head_dim 64 or 128, heads/kv_heads <= 16, 16-byte aligned tensors,
// sm_80+); else sets *why.
template <class T>
bool try_decode_mma(const DecodeAttentionParams<T>& p, cudaStream_t stream, std::string* why) {
  if constexpr (!std::is_same_v<T, bf16>) {
    (void)p;
    (void)stream;
    *why = "tensors are f32 (it reads bf16)";
    return false;
  } else {
    const int group = p.heads / p.kv_heads;
    if (p.head_dim != 64 && p.head_dim != 128) {
      *why = "head_dim is " + std::to_string(p.head_dim) + " (it needs 64 or 128)";
      return false;
    }
    if (group > decode_mma::kRows) {
      *why = "heads/kv_heads is " + std::to_string(group) + " (it holds at most 16 query rows per kv head)";
      return false;
    }
    const auto addr = reinterpret_cast<std::uintptr_t>(p.q) | reinterpret_cast<std::uintptr_t>(p.k_cache) |
                      reinterpret_cast<std::uintptr_t>(p.v_cache);
    if (addr % 16 != 0) {
      *why = "q, k_cache or v_cache is not 16-byte aligned";
      return false;
    }
    if (!device_is_sm80_plus(why)) return false;
    int dev = 0, optin = 0;
    cudaCheck(cudaGetDevice(&dev));
    cudaCheck(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    if (decode_mma::dispatch(p.head_dim, static_cast<std::size_t>(optin),
                             [&](auto cfg) { decode_mma_launch<decltype(cfg)>(p, stream); }))
      return true;
    *why = "the device allows " + std::to_string(optin) + " bytes of shared memory per block (it needs " +
           std::to_string(decode_mma::Cfg<128, 2>::kSmemBytes) + " at head_dim 128)";
    return false;
  }
}

void check_heads(int heads, int kv_heads) {
  PDSIM_CUDA_REQUIRE(heads > 0 && kv_heads > 0 && heads % kv_heads == 0,
                     "heads (" + std::to_string(heads) + ") must be a positive multiple of kv_heads (" +
                         std::to_string(kv_heads) + ")");
}

}  // namespace

template <class T>
void launch_prefill_attention(const PrefillAttentionParams<T>& p, cudaStream_t stream) {
  check_heads(p.heads, p.kv_heads);
  PDSIM_CUDA_REQUIRE(p.num_seqs >= 0 && p.num_seqs <= 65535, "prefill attention: num_seqs must be <= 65535");
  PDSIM_CUDA_REQUIRE(p.heads <= 65535, "prefill attention: heads must be <= 65535");
  const PrefillKernelChoice choice = prefill_kernel_choice();
  if (p.num_seqs == 0 || p.max_seqlen <= 0) return;
  if (choice == PrefillKernelChoice::kAuto || choice == PrefillKernelChoice::kWgmma) {
    std::string why;
    if (try_prefill_wgmma_any(p, stream, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == PrefillKernelChoice::kAuto,
                       "PDSIM_ATTENTION_KERNEL=wgmma, but the wgmma prefill kernel does not apply: " + why);
  }
  if (choice == PrefillKernelChoice::kAuto || choice == PrefillKernelChoice::kMma) {
    std::string why;
    if (try_prefill_mma(p, stream, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == PrefillKernelChoice::kAuto,
                       "PDSIM_ATTENTION_KERNEL=mma, but the tensor-core prefill kernel does not apply: " + why);
  }
  switch (dims_per_lane(p.head_dim)) {
    case 1: return prefill_launch<T, 1>(p, stream);
    case 2: return prefill_launch<T, 2>(p, stream);
    case 4: return prefill_launch<T, 4>(p, stream);
    default: return prefill_launch<T, 8>(p, stream);
  }
}

template <class T>
void launch_decode_attention(const DecodeAttentionParams<T>& p, cudaStream_t stream) {
  check_heads(p.heads, p.kv_heads);
  PDSIM_CUDA_REQUIRE(p.batch >= 0 && p.batch <= 65535, "decode attention: batch must be <= 65535");
  PDSIM_CUDA_REQUIRE(p.kv_heads <= 65535, "decode attention: kv_heads must be <= 65535 (grid y)");
  PDSIM_CUDA_REQUIRE(p.block_tokens > 0, "decode attention: block_tokens must be > 0");
  PDSIM_CUDA_REQUIRE(p.num_splits == 1 || (p.split_tokens > 0 && p.split_tokens % kTile == 0 && p.partial_acc &&
                                           p.partial_max && p.partial_sum),
                     "decode attention: split mode needs split_tokens % 32 == 0 and a workspace");
  const DecodeKernelChoice choice = decode_kernel_choice();
  if (p.batch == 0) return;
  if (choice == DecodeKernelChoice::kMma || (choice == DecodeKernelChoice::kAuto && device_cc_major() == 9)) {
    std::string why;
    if (try_decode_mma(p, stream, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == DecodeKernelChoice::kAuto,
                       "PDSIM_DECODE_KERNEL=mma, but the tensor-core decode kernel does not apply: " + why);
  }
  if (choice != DecodeKernelChoice::kSmem) {
    std::string why;
    const bool scatter = choice == DecodeKernelChoice::kRegsScatter;
    if (try_decode_regs(p, stream, scatter, &why)) return;
    PDSIM_CUDA_REQUIRE(choice == DecodeKernelChoice::kAuto,
                       std::string("PDSIM_DECODE_KERNEL=") + (scatter ? "regs-scatter" : "regs") +
                           ", but that decode kernel does not apply: " + why);
  }
  switch (dims_per_lane(p.head_dim)) {
    case 1: return decode_dispatch_rows<T, 1>(p, stream);
    case 2: return decode_dispatch_rows<T, 2>(p, stream);
    case 4: return decode_dispatch_rows<T, 4>(p, stream);
    default: return decode_dispatch_rows<T, 8>(p, stream);
  }
}

template void launch_prefill_attention<float>(const PrefillAttentionParams<float>&, cudaStream_t);
template void launch_prefill_attention<bf16>(const PrefillAttentionParams<bf16>&, cudaStream_t);
template void launch_decode_attention<float>(const DecodeAttentionParams<float>&, cudaStream_t);
template void launch_decode_attention<bf16>(const DecodeAttentionParams<bf16>&, cudaStream_t);

}  // namespace pdsim::kernels::cuda
