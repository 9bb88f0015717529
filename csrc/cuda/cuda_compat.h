// cuda_compat.h -- compile the same CUDA kernel source (.cu) two ways:
//
//   * with nvcc (real CUDA; __CUDACC__ is defined), or
//   * with a plain C++ compiler as C++20 plus -DFASTINPAINT_CUDA_EMULATION,
//     e.g. `g++ -x c++ -std=c++20 -DFASTINPAINT_CUDA_EMULATION ...`. Then
//     kernel launches run on the CPU. That is how CI runs every CUDA kernel
//     without a GPU and compares it with the CPU implementation.
//
// Kernels are written once against this contract:
//
//   FI_DEVICE_NS                 `cuda` under nvcc, `cuda_emu` under emulation
//                                (keeps the symbols of both builds apart when
//                                both end up in one library)
//   FI_LAUNCH(k, grid, block, stream, args...)
//                                k<<<grid, block, 0, stream>>>(args...)
//   FI_LAUNCH_COOPERATIVE(k, grid, block, stream, args...)
//                                same under nvcc; under emulation needed by
//                                every kernel that calls __syncthreads()
//   const char* fi_last_error()  nullptr if no launch error is pending, else a
//                                message; like cudaGetLastError() it clears
//                                the pending error.
//   unsigned fi_blocks_for(long long n, unsigned threads)
//                                ceil(n / threads), at least 1, at most 2^31-1
//
// This header is deliberately torch-free (no torch/ATen/c10 includes) and does
// not define FI_HOST_DEVICE (see csrc/kernels/macros.h).
#pragma once

#if defined(__CUDACC__) && defined(FASTINPAINT_CUDA_EMULATION)
#error "cuda_compat.h: FASTINPAINT_CUDA_EMULATION must not be defined when compiling with nvcc"

#elif defined(__CUDACC__)
// ---------------------------------------------------------------------------
// Real CUDA.
// ---------------------------------------------------------------------------
#include <cuda_runtime.h>
#include <cuda_fp16.h>
#include <cuda_bf16.h>

#define FI_DEVICE_NS cuda

#define FI_LAUNCH(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)
#define FI_LAUNCH_COOPERATIVE(kernel, grid, block, stream, ...) \
  kernel<<<(grid), (block), 0, (stream)>>>(__VA_ARGS__)

inline const char* fi_last_error() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

#elif defined(FASTINPAINT_CUDA_EMULATION)
// ---------------------------------------------------------------------------
// CPU emulation (plain C++20, Linux/glibc: uses ucontext fibers).
//
// Execution model:
//   * Blocks run one after another on the calling OS thread (or, if _OPENMP
//     is defined, whole blocks are spread over OpenMP threads).
//   * FI_LAUNCH: the threads of a block are plain sequential calls of the
//     kernel function -- fast, but no barrier is possible, so
//     __syncthreads() aborts the process with a message.
//   * FI_LAUNCH_COOPERATIVE: each CUDA thread of a block is a fiber
//     (makecontext/swapcontext) with its own stack. __syncthreads() yields to
//     a per-OS-thread scheduler, which resumes the waiting fibers in thread
//     order once every live thread of the block has reached the barrier. A
//     thread that returned no longer takes part in later barriers.
//   * All per-thread built-ins (threadIdx, blockIdx, ...) and __shared__
//     variables are thread_local: every fiber of a block runs on the same OS
//     thread, so they see the same __shared__ storage, while OpenMP threads
//     running other blocks get their own copies.
// ---------------------------------------------------------------------------
#include <atomic>
#include <cmath>
#include <math.h>  // glibc: expf, sqrtf, fabsf, ... in the global namespace
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#include "cuda/emulation_registry.h"

#include <sys/mman.h>
#include <ucontext.h>
#include <unistd.h>

#ifdef _OPENMP
#include <omp.h>
#endif

#define FI_DEVICE_NS cuda_emu

// CUDA qualifiers. Everything is host code here. (__restrict__ is a GNU
// extension that g++ already understands.)
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __constant__
#define __launch_bounds__(...)
// A __shared__ variable must be one object per block that all threads of the
// block see. Function-local `static` gives one object for all calls; making
// it `thread_local` as well gives one per OS thread. Since a block's threads
// (plain calls or fibers) all run on one OS thread, and blocks on the same OS
// thread run one after another, that is exactly one object per running block.
// (`extern __shared__` dynamic shared memory is not supported.)
#define __shared__ static thread_local

// Half-precision types, bit-compatible with CUDA's __half / __nv_bfloat16 (and torch's Half /
// BFloat16), so that the fp16/bf16 instantiations of the kernels run under emulation too. Only
// what the kernels use: construction from float (round to nearest even, as __float2half_rn) and
// conversion to float.
namespace fi_emu_detail {
inline uint16_t float_to_half_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  const uint32_t sign = (x >> 16) & 0x8000u, a = x & 0x7fffffffu;
  if (a >= 0x7f800000u) return uint16_t(sign | (a > 0x7f800000u ? 0x7e00u : 0x7c00u));  // NaN / inf
  if (a >= 0x477ff000u) return uint16_t(sign | 0x7c00u);  // >= 65520 rounds to inf
  if (a < 0x38800000u) {  // below 2^-14: subnormal half, in units of 2^-24
    float af;
    std::memcpy(&af, &a, 4);
    return uint16_t(sign | uint32_t(std::nearbyint(af * 16777216.0f)));
  }
  uint32_t h = ((((a >> 23) - 112u) << 10) | ((a & 0x7fffffu) >> 13));
  const uint32_t rest = a & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right
  return uint16_t(sign | h);
}
inline float half_bits_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16, e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0) {
    const float v = float(m) * (1.0f / 16777216.0f);
    return sign ? -v : v;
  }
  const uint32_t bits = sign | (e == 31 ? (0xffu << 23) | (m << 13) : ((e + 112u) << 23) | (m << 13));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
inline uint16_t float_to_bf16_bits(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return uint16_t((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1u);  // round to nearest even
  return uint16_t(x >> 16);
}
inline float bf16_bits_to_float(uint16_t b) {
  const uint32_t bits = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}
}  // namespace fi_emu_detail

struct __half {
  uint16_t bits;
  __half() = default;
  __half(float f) : bits(fi_emu_detail::float_to_half_bits(f)) {}
  operator float() const { return fi_emu_detail::half_bits_to_float(bits); }
};
struct __nv_bfloat16 {
  uint16_t bits;
  __nv_bfloat16() = default;
  __nv_bfloat16(float f) : bits(fi_emu_detail::float_to_bf16_bits(f)) {}
  operator float() const { return fi_emu_detail::bf16_bits_to_float(bits); }
};
static_assert(sizeof(__half) == 2 && sizeof(__nv_bfloat16) == 2, "half types must be 16 bits");

struct uint3 {
  unsigned x, y, z;
};

struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned vx = 1, unsigned vy = 1, unsigned vz = 1)
      : x(vx), y(vy), z(vz) {}
  constexpr dim3(uint3 v) : x(v.x), y(v.y), z(v.z) {}
};

// Opaque stream handle; emulated launches are synchronous and ignore it.
struct CUstream_st;
using cudaStream_t = CUstream_st*;

// Built-in index variables, per OS thread (see the execution model above).
inline thread_local uint3 threadIdx{0, 0, 0};
inline thread_local uint3 blockIdx{0, 0, 0};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
inline constexpr int warpSize = 32;

// ---- device functions -------------------------------------------------------

template <class T>
inline T __ldg(const T* p) { return *p; }

// CUDA's min/max are overloaded functions callable unqualified in device
// code. They are plain functions here, never macros, so std::min/std::max
// and numeric_limits<T>::max() keep working.
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }  // CUDA: fminf
inline float max(float a, float b) { return fmaxf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline double max(double a, double b) { return fmax(a, b); }

// Math: <math.h> already provides expf, sqrtf, fabsf, floorf, ... unqualified.
inline float rsqrtf(float x) { return 1.0f / sqrtf(x); }
inline double rsqrt(double x) { return 1.0 / sqrt(x); }
inline float __expf(float x) { return expf(x); }
inline float __logf(float x) { return logf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __saturatef(float x) { return x < 0.0f ? 0.0f : (x > 1.0f ? 1.0f : x); }

// Atomics. Blocks may run on several OpenMP threads, so these really are
// atomic (std::atomic_ref); like CUDA they return the previous value.
namespace fi_emu_detail {
template <class T>
inline T atomic_add(T* p, T v) {
  return std::atomic_ref<T>(*p).fetch_add(v, std::memory_order_relaxed);
}
template <class T>
inline T atomic_cas(T* p, T compare, T val) {
  std::atomic_ref<T>(*p).compare_exchange_strong(compare, val, std::memory_order_relaxed);
  return compare;  // on failure updated to the current value; on success == old
}
template <class T, bool kMin>
inline T atomic_minmax(T* p, T v) {
  std::atomic_ref<T> r(*p);
  T old = r.load(std::memory_order_relaxed);
  while ((kMin ? v < old : v > old) &&
         !r.compare_exchange_weak(old, v, std::memory_order_relaxed)) {
  }
  return old;
}
}  // namespace fi_emu_detail

inline float atomicAdd(float* p, float v) { return fi_emu_detail::atomic_add(p, v); }
inline double atomicAdd(double* p, double v) { return fi_emu_detail::atomic_add(p, v); }
inline int atomicAdd(int* p, int v) { return fi_emu_detail::atomic_add(p, v); }
inline unsigned atomicAdd(unsigned* p, unsigned v) { return fi_emu_detail::atomic_add(p, v); }
inline unsigned long long atomicAdd(unsigned long long* p, unsigned long long v) {
  return fi_emu_detail::atomic_add(p, v);
}
inline int atomicMin(int* p, int v) { return fi_emu_detail::atomic_minmax<int, true>(p, v); }
inline unsigned atomicMin(unsigned* p, unsigned v) { return fi_emu_detail::atomic_minmax<unsigned, true>(p, v); }
inline int atomicMax(int* p, int v) { return fi_emu_detail::atomic_minmax<int, false>(p, v); }
inline unsigned atomicMax(unsigned* p, unsigned v) { return fi_emu_detail::atomic_minmax<unsigned, false>(p, v); }
inline int atomicCAS(int* p, int c, int v) { return fi_emu_detail::atomic_cas(p, c, v); }
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) { return fi_emu_detail::atomic_cas(p, c, v); }
inline unsigned long long atomicCAS(unsigned long long* p, unsigned long long c, unsigned long long v) {
  return fi_emu_detail::atomic_cas(p, c, v);
}

// ---- launch machinery -------------------------------------------------------

#ifndef FI_EMU_FIBER_STACK_BYTES
#define FI_EMU_FIBER_STACK_BYTES (64 * 1024)  // per CUDA thread of a cooperative block
#endif

namespace fi_emu_detail {

enum class Mode { host, plain, cooperative };
// What __syncthreads() may do on this OS thread right now.
inline thread_local Mode mode = Mode::host;
// Pending launch error (static string), per host thread like CUDA's.
inline thread_local const char* pending_error = nullptr;

// Fibers of the cooperative block currently running on this OS thread.
// Stacks are allocated once and reused for all later blocks and launches.
struct FiberBlock {
  std::vector<char*> stacks;     // each: one guard page + FI_EMU_FIBER_STACK_BYTES
  std::vector<ucontext_t> ctx;   // one per CUDA thread of the block
  std::vector<unsigned char> done;
  ucontext_t scheduler;
  unsigned current = 0;          // linear thread index of the running fiber
  void (*body)(void*) = nullptr; // runs the kernel for the current threadIdx
  void* body_arg = nullptr;

  static std::size_t guard_bytes() { return static_cast<std::size_t>(sysconf(_SC_PAGESIZE)); }

  void reserve(unsigned n) {
    if (ctx.size() < n) ctx.resize(n);  // no live fiber refers to ctx between blocks
    if (done.size() < n) done.resize(n);
    while (stacks.size() < n) {
      // The guard page at the low end turns a stack overflow into a crash
      // instead of silently overwriting the neighbouring fiber's stack.
      const std::size_t total = guard_bytes() + FI_EMU_FIBER_STACK_BYTES;
      void* p = mmap(nullptr, total, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) {
        std::fprintf(stderr, "cuda_compat emulation: cannot allocate fiber stack\n");
        std::abort();
      }
      mprotect(p, guard_bytes(), PROT_NONE);
      stacks.push_back(static_cast<char*>(p));
    }
  }
  ~FiberBlock() {
    for (char* s : stacks) munmap(s, guard_bytes() + FI_EMU_FIBER_STACK_BYTES);
  }
};
inline thread_local FiberBlock fibers;

inline void set_thread_index(unsigned linear) {
  threadIdx.x = linear % blockDim.x;
  threadIdx.y = (linear / blockDim.x) % blockDim.y;
  threadIdx.z = linear / (blockDim.x * blockDim.y);
}

inline void fiber_entry() {
  FiberBlock& fb = fibers;
  fb.body(fb.body_arg);
  fb.done[fb.current] = 1;
  // Returning switches to uc_link, i.e. back to the scheduler.
}

// Runs one block of n threads as fibers. Each round resumes every unfinished
// fiber once, in thread order; a fiber runs until it reaches __syncthreads()
// (yield) or returns. After a round every live thread is waiting at the
// barrier, so the next round is exactly "release the barrier".
inline void run_block_cooperative(unsigned n, void (*body)(void*), void* arg) {
  FiberBlock& fb = fibers;
  fb.reserve(n);
  fb.body = body;
  fb.body_arg = arg;
  for (unsigned i = 0; i < n; ++i) {
    ucontext_t& c = fb.ctx[i];
    getcontext(&c);
    c.uc_stack.ss_sp = fb.stacks[i] + FiberBlock::guard_bytes();
    c.uc_stack.ss_size = FI_EMU_FIBER_STACK_BYTES;
    c.uc_link = &fb.scheduler;
    makecontext(&c, fiber_entry, 0);
    fb.done[i] = 0;
  }
  unsigned live = n;
  while (live > 0) {
    for (unsigned i = 0; i < n; ++i) {
      if (fb.done[i]) continue;
      fb.current = i;
      set_thread_index(i);
      swapcontext(&fb.scheduler, &fb.ctx[i]);
      if (fb.done[i]) --live;
    }
  }
}

inline void syncthreads() {
  switch (mode) {
    case Mode::cooperative: {
      FiberBlock& fb = fibers;
      swapcontext(&fb.ctx[fb.current], &fb.scheduler);  // yield; resumed after the barrier
      return;
    }
    case Mode::plain:
      // Sequential threads cannot wait for each other; continuing would
      // silently compute wrong results.
      std::fprintf(stderr,
                   "cuda_compat emulation: __syncthreads() called in kernel launched with "
                   "FI_LAUNCH; use FI_LAUNCH_COOPERATIVE\n");
      std::abort();
    case Mode::host:
      std::fprintf(stderr, "cuda_compat emulation: __syncthreads() called outside a kernel launch\n");
      std::abort();
  }
}

// Same limits CUDA checks at launch (cudaErrorInvalidConfiguration).
inline const char* check_config(dim3 grid, dim3 block) {
  if (block.x == 0 || block.y == 0 || block.z == 0)
    return "invalid configuration argument (emulation: a block dimension is zero)";
  if (block.x > 1024 || block.y > 1024 || block.z > 64)
    return "invalid configuration argument (emulation: blockDim exceeds (1024, 1024, 64))";
  if (static_cast<unsigned long long>(block.x) * block.y * block.z > 1024)
    return "invalid configuration argument (emulation: block has more than 1024 threads)";
  if (grid.x == 0 || grid.y == 0 || grid.z == 0)
    return "invalid configuration argument (emulation: a grid dimension is zero)";
  if (grid.x > 2147483647u || grid.y > 65535u || grid.z > 65535u)
    return "invalid configuration argument (emulation: gridDim exceeds (2^31-1, 65535, 65535))";
  return nullptr;
}

template <class F>
void call_body(void* f) { (*static_cast<F*>(f))(); }

template <class... P, class... A>
void launch(Mode m, const char* name, void (*kernel)(P...), dim3 grid, dim3 block, cudaStream_t /*stream*/,
            A&&... args) {
  static_assert(sizeof...(P) == sizeof...(A), "FI_LAUNCH: wrong number of kernel arguments");
  record_launch(name);
  if (const char* why = check_config(grid, block)) {
    pending_error = why;
    return;
  }
  // Converted once to the parameter types, then copied into every call, like
  // CUDA's by-value kernel parameters.
  const std::tuple<std::decay_t<P>...> params{std::forward<A>(args)...};
  auto call = [&] { std::apply(kernel, params); };
  const unsigned nthreads = block.x * block.y * block.z;

  auto run_block = [&](unsigned long long b) {
    gridDim = grid;
    blockDim = block;
    blockIdx.x = static_cast<unsigned>(b % grid.x);
    blockIdx.y = static_cast<unsigned>((b / grid.x) % grid.y);
    blockIdx.z = static_cast<unsigned>(b / (static_cast<unsigned long long>(grid.x) * grid.y));
    mode = m;
    if (m == Mode::plain) {
      for (unsigned z = 0; z < block.z; ++z)
        for (unsigned y = 0; y < block.y; ++y)
          for (unsigned x = 0; x < block.x; ++x) {
            threadIdx = uint3{x, y, z};
            call();
          }
    } else {
      run_block_cooperative(nthreads, &call_body<decltype(call)>, &call);
    }
    mode = Mode::host;
  };

  const unsigned long long nblocks = static_cast<unsigned long long>(grid.x) * grid.y * grid.z;
#ifdef _OPENMP
  if (nblocks > 1 && !omp_in_parallel()) {
#pragma omp parallel for schedule(dynamic)
    for (long long b = 0; b < static_cast<long long>(nblocks); ++b) run_block(static_cast<unsigned long long>(b));
    return;
  }
#endif
  for (unsigned long long b = 0; b < nblocks; ++b) run_block(b);
}

}  // namespace fi_emu_detail

inline void __syncthreads() { fi_emu_detail::syncthreads(); }

// Emulated launches are synchronous: the kernel has finished when these return.
#define FI_LAUNCH(kernel, grid, block, stream, ...)                                      \
  ::fi_emu_detail::launch(::fi_emu_detail::Mode::plain, #kernel, kernel, dim3(grid), dim3(block), \
                          (stream)__VA_OPT__(, ) __VA_ARGS__)
#define FI_LAUNCH_COOPERATIVE(kernel, grid, block, stream, ...)                                \
  ::fi_emu_detail::launch(::fi_emu_detail::Mode::cooperative, #kernel, kernel, dim3(grid), dim3(block), \
                          (stream)__VA_OPT__(, ) __VA_ARGS__)

inline const char* fi_last_error() {
  const char* e = fi_emu_detail::pending_error;
  fi_emu_detail::pending_error = nullptr;  // consumed, like cudaGetLastError()
  return e;
}

#else
#error "cuda_compat.h: compile CUDA sources either with nvcc (real CUDA), or as C++20 with emulation: g++ -x c++ -std=c++20 -DFASTINPAINT_CUDA_EMULATION (kernel launches then run on the CPU)"
#endif

// ---- shared by both modes -------------------------------------------------

// Number of blocks of `threads` threads covering n elements: ceil(n/threads),
// at least 1 (so an empty input is still a valid launch; kernels bounds-check)
// and at most 2^31-1 (the gridDim.x limit; grid-stride loops cover the rest).
inline unsigned fi_blocks_for(long long n, unsigned threads) {
  if (n <= 0 || threads == 0) return 1;
  const long long b = n / threads + (n % threads != 0 ? 1 : 0);
  return b > 2147483647LL ? 2147483647u : static_cast<unsigned>(b);
}
