#include "ops/backend.h"

#include <atomic>

#include <c10/core/Stream.h>
#include <c10/core/impl/DeviceGuardImplInterface.h>
#include <c10/util/Exception.h>

namespace fastinpaint {
namespace {
std::atomic<bool> g_cuda_emulation{false};
}

void set_cuda_emulation(bool enabled) {
  TORCH_CHECK(!enabled || kBuiltWithCudaEmulation,
              "fastinpaint was built without CUDA emulation (FASTINPAINT_CUDA_EMULATION=OFF)");
  g_cuda_emulation = enabled;
}

bool cuda_emulation_enabled() { return g_cuda_emulation; }

Backend backend_for(const at::Tensor& t) {
  if (t.is_cuda()) {
    TORCH_CHECK(kBuiltWithCuda,
                "fastinpaint was built without its CUDA kernels (nvcc was not found at build time, or "
                "FASTINPAINT_CUDA=OFF), so it cannot run on ",
                t.device(),
                ". Reinstall on a machine with the CUDA toolkit: "
                "FASTINPAINT_CUDA=ON pip install --no-build-isolation fastinpaint");
    return Backend::CUDA;
  }
  TORCH_CHECK(t.is_cpu(), "fastinpaint kernels run on CPU and CUDA tensors, got a tensor on ", t.device());
  return g_cuda_emulation ? Backend::CUDAEmulated : Backend::CPU;
}

DType kernel_dtype(const at::Tensor& t) {
  switch (t.scalar_type()) {
    case at::kFloat:
      return DType::Float32;
    case at::kDouble:
      return DType::Float64;
    case at::kHalf:
      return DType::Float16;
    case at::kBFloat16:
      return DType::BFloat16;
    default:
      TORCH_CHECK_TYPE(false, "fastinpaint kernels take floating-point tensors, got ", t.scalar_type());
  }
}

void* current_stream(const at::Tensor& t) {
  if (!t.is_cuda()) return nullptr;
  return c10::impl::getDeviceGuardImpl(c10::DeviceType::CUDA)->getStream(t.device()).native_handle();
}

void check_kernel_result(const char* kernel, const char* error) {
  TORCH_CHECK(error == nullptr, "fastinpaint kernel ", kernel, " failed: ", error);
}

}  // namespace fastinpaint
