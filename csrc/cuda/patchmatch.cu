// CUDA backend of PatchMatch and voting: indexing and launches only; the math is
// kernels/patchmatch.h, the same functions the CPU backend runs, so a seed gives the same field
// on both (jump flooding; scan order is inherently sequential and CPU-only).
//
// Compiled twice: by nvcc for the GPU, and by g++ with FASTINPAINT_CUDA_EMULATION (namespace
// cuda_emu) so that the tests run these very kernels on the CPU (see cuda_compat.h).
#include "cuda/cuda_compat.h"

#define FI_BACKEND_NS FI_DEVICE_NS
#include "kernels/patchmatch_backend.h"
#undef FI_BACKEND_NS

namespace fastinpaint {
namespace FI_DEVICE_NS {
namespace {

// 2-D blocks: a warp covers 32 neighbouring pixels of a row, whose patches overlap, so their
// loads of A hit the same cache lines.
constexpr unsigned kBlockX = 32, kBlockY = 4;

dim3 grid_for(int64_t H, int64_t W) {
  return dim3(fi_blocks_for(W, kBlockX), fi_blocks_for(H, kBlockY), 1);
}

__global__ void pm_init_kernel(PMProblem P, const int32_t* __restrict__ init, int32_t* nnf, float* dist) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
  if (x >= P.Wt || y >= P.Ht) return;
  pm_init_pixel(P, init, y, x, nnf, dist);
}

__global__ void pm_jump_kernel(PMProblem P, const int32_t* __restrict__ prev, const float* __restrict__ prev_dist,
                               int32_t* next, float* next_dist, int64_t step, bool search, uint32_t iteration) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
  if (x >= P.Wt || y >= P.Ht) return;
  pm_jump_pixel(P, prev, prev_dist, y, x, step, search, iteration, next, next_dist);
}

__global__ void pm_vote_kernel(const float* __restrict__ source, int64_t Hs, int64_t Ws, int64_t C,
                               const int32_t* __restrict__ nnf, const float* __restrict__ weight,
                               const uint8_t* __restrict__ mask, int64_t H, int64_t W, int r, int reduce, float* out,
                               float* total) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
  if (x >= W || y >= H) return;
  const float t = pm_vote_masked_pixel(source, Hs, Ws, C, nnf, weight, mask, H, W, r, reduce, y, x, out);
  if (total) total[y * W + x] = t;
}

__global__ void pm_valid_centres_kernel(const uint8_t* __restrict__ valid, int64_t H, int64_t W, int r, uint8_t* out) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
  if (x >= W || y >= H) return;
  out[y * W + x] = pm_valid_centre(valid, H, W, r, y, x);
}

__global__ void pm_mean_distances_kernel(PMProblem P, const int32_t* __restrict__ nnf, const float* __restrict__ dist,
                                         float* mean) {
  const int64_t x = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t y = int64_t(blockIdx.y) * blockDim.y + threadIdx.y;
  if (x >= P.Wt || y >= P.Ht) return;
  mean[y * P.Wt + x] = pm_mean_distance(P, nnf, dist, y, x);
}

const char* check_grid(int64_t H, int64_t W) {
  if (H > 65535LL * kBlockY) return "patchmatch CUDA kernels: image taller than 262140 rows";
  if (W > 0x7fffffffLL) return "patchmatch CUDA kernels: image wider than 2^31-1 columns";
  return nullptr;
}

}  // namespace

const char* pm_init(const PMProblem& P, const int32_t* init, int32_t* nnf, float* dist, void* stream) {
  if (const char* e = check_grid(P.Ht, P.Wt)) return e;
  FI_LAUNCH(pm_init_kernel, grid_for(P.Ht, P.Wt), dim3(kBlockX, kBlockY, 1), static_cast<cudaStream_t>(stream), P,
            init, nnf, dist);
  return fi_last_error();
}

const char* pm_jump_pass(const PMProblem& P, const int32_t* prev, const float* prev_dist, int32_t* next,
                         float* next_dist, int64_t step, bool search, uint32_t iteration, void* stream) {
  if (const char* e = check_grid(P.Ht, P.Wt)) return e;
  FI_LAUNCH(pm_jump_kernel, grid_for(P.Ht, P.Wt), dim3(kBlockX, kBlockY, 1), static_cast<cudaStream_t>(stream), P,
            prev, prev_dist, next, next_dist, step, search, iteration);
  return fi_last_error();
}

const char* pm_scan(const PMProblem&, int32_t*, float*, uint32_t, int64_t, void*) {
  return "scan-order propagation is sequential and runs on the CPU only; use propagation='jump' on CUDA";
}

const char* pm_valid_centres(const uint8_t* valid, int64_t H, int64_t W, int r, uint8_t* out, void* stream) {
  if (const char* e = check_grid(H, W)) return e;
  FI_LAUNCH(pm_valid_centres_kernel, grid_for(H, W), dim3(kBlockX, kBlockY, 1), static_cast<cudaStream_t>(stream),
            valid, H, W, r, out);
  return fi_last_error();
}

const char* pm_mean_distances(const PMProblem& P, const int32_t* nnf, const float* dist, float* mean, void* stream) {
  if (const char* e = check_grid(P.Ht, P.Wt)) return e;
  FI_LAUNCH(pm_mean_distances_kernel, grid_for(P.Ht, P.Wt), dim3(kBlockX, kBlockY, 1),
            static_cast<cudaStream_t>(stream), P, nnf, dist, mean);
  return fi_last_error();
}

const char* pm_vote(const float* source, int64_t Hs, int64_t Ws, int64_t C, const int32_t* nnf, const float* weight,
                    const uint8_t* mask, int64_t H, int64_t W, int r, int reduce, float* out, float* total,
                    void* stream) {
  if (const char* e = check_grid(H, W)) return e;
  FI_LAUNCH(pm_vote_kernel, grid_for(H, W), dim3(kBlockX, kBlockY, 1), static_cast<cudaStream_t>(stream), source, Hs,
            Ws, C, nnf, weight, mask, H, W, r, reduce, out, total);
  return fi_last_error();
}

}  // namespace FI_DEVICE_NS
}  // namespace fastinpaint
