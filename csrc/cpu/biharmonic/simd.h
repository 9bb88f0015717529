// The biharmonic solver's SIMD spans: one register as a GCC vector of the target's width, the
// masked store of a run's partial last register, and the span loops (fill, copy, dot products,
// even lanes) that every pass over a run is built from. Apart from the algorithm because this is
// what differs per instruction set.
//
// Like every file of csrc/cpu/biharmonic/, this header is compiled only as part of solver.cpp,
// one translation unit compiled once per instruction set (CMakeLists.txt:
// FASTINPAINT_ISA_SOURCES), each copy in namespace cpu::<isa>. Hence the internal linkage
// (anonymous namespace) in a header: the helpers stay inlinable into the hot loops, and each
// ISA's copy is its own.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <type_traits>

#if defined(__AVX__)
#include <immintrin.h>
#endif

#include "kernels/macros.h"

#ifndef FASTINPAINT_CPU_ISA
#define FASTINPAINT_CPU_ISA baseline
#endif

namespace fastinpaint {
namespace cpu {
namespace FASTINPAINT_CPU_ISA {
namespace {

// Row blocks of the matrix-vector product: kBlock consecutive pixels' sums stay in registers
// through all taps. Planes get slack cells so that a run's last block may read past it: 2 kBlock
// for the Galerkin product, which reads a coarse block's fine children (stride 2).
constexpr int kBlock = 16;
constexpr int64_t kSlack = 2 * kBlock + 4;

// One register of T as a GCC vector: solver.cpp is compiled once per instruction set
// (CMakeLists.txt) with the register width of each. Wider GCC vectors than the target's
// registers are lowered badly (AVX2 with 64-byte vectors ran slower than SSE2).
#if defined(__AVX512F__)
constexpr int kVecBytes = 64;
#elif defined(__AVX__)
constexpr int kVecBytes = 32;
#else
constexpr int kVecBytes = 16;
#endif
template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  typedef float type __attribute__((vector_size(kVecBytes)));
};
template <>
struct VecOf<double> {
  typedef double type __attribute__((vector_size(kVecBytes)));
};
template <typename T>
using Vec = typename VecOf<T>::type;
template <typename T>
constexpr int kLanes = kVecBytes / sizeof(T);
template <typename T>
constexpr int kParts = kBlock / kLanes<T>;

typedef float HalfVecFloat __attribute__((vector_size(kVecBytes / 2)));  // kLanes<double> floats

template <typename T>
FI_INLINE Vec<T> load_vec(const T* p) {
  Vec<T> v;
  std::memcpy(&v, p, sizeof(v));
  return v;
}

// out[j] = v[j] for j < m (all lanes if m >= kLanes<T>, none if m <= 0); memory past lane m is
// not touched, so a run's last block may end next to another run that another thread writes. Half
// of the blocks are a run's partial last block on free-form masks, and writing them by a
// run-time-length loop (or memcpy) cost as much as their matrix-vector product: hence the masked
// stores of AVX-512 and AVX2 (SSE2 has none: a loop).
template <typename T, typename V>
FI_INLINE void store_first(T* out, const V& v, int64_t m) {
  constexpr int N = sizeof(V) / sizeof(T);
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, double>);
  if (m >= N) {
    std::memcpy(out, &v, sizeof(v));
    return;
  }
  constexpr bool f32 = std::is_same_v<T, float>;
#if defined(__AVX512F__)
  const unsigned bits = (1u << std::max<int64_t>(m, 0)) - 1u;
  if constexpr (sizeof(V) == 64) {
    if constexpr (f32) _mm512_mask_storeu_ps(out, static_cast<__mmask16>(bits), reinterpret_cast<const __m512&>(v));
    else _mm512_mask_storeu_pd(out, static_cast<__mmask8>(bits), reinterpret_cast<const __m512d&>(v));
    return;
  } else if constexpr (sizeof(V) == 32) {  // AVX512VL
    if constexpr (f32) _mm256_mask_storeu_ps(out, static_cast<__mmask8>(bits), reinterpret_cast<const __m256&>(v));
    else _mm256_mask_storeu_pd(out, static_cast<__mmask8>(bits), reinterpret_cast<const __m256d&>(v));
    return;
  }
#elif defined(__AVX__)
  if constexpr (sizeof(V) == 32 || sizeof(V) == 16) {
    V lane;
    for (int j = 0; j < N; ++j) lane[j] = T(j);
    const auto keep = lane < T(m);  // integer lanes: -1 where j < m
    if constexpr (sizeof(V) == 32) {
      if constexpr (f32) _mm256_maskstore_ps(out, reinterpret_cast<const __m256i&>(keep), reinterpret_cast<const __m256&>(v));
      else _mm256_maskstore_pd(out, reinterpret_cast<const __m256i&>(keep), reinterpret_cast<const __m256d&>(v));
    } else {
      if constexpr (f32) _mm_maskstore_ps(out, reinterpret_cast<const __m128i&>(keep), reinterpret_cast<const __m128&>(v));
      else _mm_maskstore_pd(out, reinterpret_cast<const __m128i&>(keep), reinterpret_cast<const __m128d&>(v));
    }
    return;
  }
#endif
  for (int64_t j = 0; j < m; ++j) out[j] = v[j];
}

// Calls f(i, m) for i = 0, N, 2N, ... < len and m = len - i, N = kLanes<T>: a run walked a register
// at a time, the last one partial. f loads whole registers (compact arrays and grid planes have
// slack cells past their ends) and stores with store_first(..., m).
template <typename T, typename F>
FI_INLINE void for_lanes(int64_t len, const F& f) {
  for (int64_t i = 0; i < len; i += kLanes<T>) f(i, len - i);
}

template <typename T>
FI_INLINE void fill_span(T* out, int64_t len, T value) {
  const Vec<T> v = Vec<T>{} + value;
  for_lanes<T>(len, [&](int64_t i, int64_t m) { store_first(out + i, v, m); });
}

// out[i] = in[i], i < len (in is read by whole registers).
template <typename T>
FI_INLINE void copy_span(const T* in, int64_t len, T* out) {
  for_lanes<T>(len, [&](int64_t i, int64_t m) { store_first(out + i, load_vec(in + i), m); });
}

// One Vec<T> (kLanes<T> values) from float or T memory.
template <typename T, typename U>
FI_INLINE Vec<T> load_as(const U* p) {
  if constexpr (std::is_same_v<T, U>) {
    return load_vec(p);
  } else {
    static_assert(std::is_same_v<T, double> && std::is_same_v<U, float>);
    HalfVecFloat f;
    std::memcpy(&f, p, sizeof(f));
    return __builtin_convertvector(f, Vec<double>);
  }
}

// sum a[i] b[i] over i < len in float64, 8 lanes at a time (a plain loop would be one serial
// chain of adds: the compiler may not reassociate floating-point sums).

template <typename T, typename U>
FI_INLINE double dot_span(const T* a, const U* b, int64_t len) {
  constexpr int N = kLanes<double>;
  Vec<double> acc = {};
  int64_t i = 0;
  for (; i + N <= len; i += N) acc += load_as<double>(a + i) * load_as<double>(b + i);
  double s = 0.0;
  for (; i < len; ++i) s += double(a[i]) * double(b[i]);
  for (int j = 0; j < N; ++j) s += acc[j];
  return s;
}

// sum of a[j] b[j] over j < m <= kBlock, in vector registers: reads whole blocks (the arrays have
// kBlock slack), the lanes past m are dropped. (A scalar loop would be one serial chain of adds:
// the compiler may not reassociate floating-point sums.)
template <typename T>
FI_INLINE T block_dot(const T* a, const T* b, int64_t m) {
  constexpr int N = kLanes<T>;
  Vec<T> lane;
  for (int j = 0; j < N; ++j) lane[j] = T(j);
  Vec<T> acc = {};
  for (int p = 0; p < kBlock / N; ++p) {
    const Vec<T> prod = load_vec(a + p * N) * load_vec(b + p * N);
    acc += lane + T(p * N) < T(m) ? prod : Vec<T>{};
  }
  T s = 0;
  for (int j = 0; j < N; ++j) s += acc[j];
  return s;
}

// kLanes<float> values a[0], a[2], a[4], ...: two loads and a shuffle.
FI_INLINE Vec<float> load_even(const float* a) {
  typedef int32_t Index __attribute__((vector_size(kVecBytes)));
  Index even;
  for (int j = 0; j < kLanes<float>; ++j) even[j] = 2 * j;
  return __builtin_shuffle(load_vec(a), load_vec(a + kLanes<float>), even);
}

}  // namespace
}  // namespace FASTINPAINT_CPU_ISA
}  // namespace cpu
}  // namespace fastinpaint
