// Validation and layout for the biharmonic multigrid solver (csrc/cpu/biharmonic/solver.cpp).
// CPU only: the hierarchy's setup (coarsening, Galerkin products) is host work, and the solver
// is called from NumPy code.
#include "ops/biharmonic.h"

#include <ATen/ops/empty.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <algorithm>

#include "kernels/biharmonic_backend.h"
#include "kernels/biharmonic.h"

namespace fastinpaint {

BhSolveResult biharmonic_solve(const at::Tensor& image, const at::Tensor& hole, const at::Tensor& table, double tol,
                               int64_t max_iter, c10::string_view isa, bool fill,
                               const std::optional<at::Tensor>& out_image) {
  const char* op = "biharmonic_solve";
  TORCH_CHECK(image.device().is_cpu() && hole.device().is_cpu() && table.device().is_cpu(), op,
              ": the solver runs on the CPU; pass CPU tensors");
  TORCH_CHECK_VALUE(image.dim() == 3 && image.scalar_type() == at::kDouble && image.size(2) >= 1, op,
                    ": image must be float64 (H, W, C), got ", image.scalar_type(), " of shape ", image.sizes());
  const int64_t H = image.size(0), W = image.size(1), C = image.size(2);
  TORCH_CHECK_VALUE(hole.dim() == 2 && hole.size(0) == H && hole.size(1) == W, op, ": hole must be (", H, ", ", W,
                    ") like the image, got shape ", hole.sizes());
  TORCH_CHECK_VALUE(table.dim() == 2 && table.size(0) == 81 && table.size(1) == kBhFineTaps &&
                        table.scalar_type() == at::kDouble,
                    op, ": table must be float64 (81, ", kBhFineTaps, "), got ", table.scalar_type(), " of shape ",
                    table.sizes());
  TORCH_CHECK_VALUE(tol > 0 && max_iter >= 1, op, ": need tol > 0 and max_iter >= 1, got tol=", tol,
                    ", max_iter=", max_iter);
  TORCH_CHECK_VALUE(hole.scalar_type() == at::kBool || hole.scalar_type() == at::kByte, op,
                    ": hole must be bool or uint8, got ", hole.scalar_type());
  // No ATen element-wise op here (nor below): each would be a parallel region, and on a busy
  // machine waiting for a second thread costs more than this whole solve on small images.
  const at::Tensor hole_c = hole.contiguous();
  const uint8_t* hole_u8 = static_cast<const uint8_t*>(hole_c.data_ptr());
  int64_t n = 0;
  for (int64_t i = 0; i < H * W; ++i) n += hole_u8[i] != 0;
  TORCH_CHECK_VALUE(n > 0 && n < H * W, op, ": need at least one hole pixel and one known pixel, got ", n,
                    " hole pixels of ", H * W);
  const bool to_out = out_image.has_value() && out_image->defined();
  TORCH_CHECK_VALUE(to_out == fill, op, ": fill=True writes the filled image into out; pass both or neither");
  if (to_out)
    TORCH_CHECK_VALUE(out_image->device().is_cpu() && out_image->scalar_type() == at::kDouble &&
                          out_image->sizes() == image.sizes() && out_image->is_contiguous(),
                      op, ": out must be a contiguous float64 CPU tensor of the image's shape ", image.sizes(), ", got ",
                      out_image->scalar_type(), " of shape ", out_image->sizes());
  const at::Tensor image_c = image.contiguous(), table_c = table.contiguous();
  at::Tensor x = at::empty({fill ? 0 : n, C}, image.options());
  at::Tensor lo = at::empty({C}, image.options()), hi = at::empty({C}, image.options());
  cpu::BhSolveInfo info;
  cpu::BhOutput out;
  out.lo = lo.data_ptr<double>();
  out.hi = hi.data_ptr<double>();
  if (to_out)
    out.image = out_image->data_ptr<double>();
  else
    out.x = x.data_ptr<double>();
  const std::string isa_name(isa);
  const char* error = cpu::biharmonic_mg_solve(H, W, hole_u8, image_c.data_ptr<double>(), C,
                                               table_c.data_ptr<double>(), out, tol, max_iter, &info,
                                               isa_name.c_str());
  TORCH_CHECK_VALUE(error == nullptr, op, ": ", error ? error : "");
  return {x, lo, hi, info.iterations, info.last_update, info.levels, info.isa};
}

// The schema. The solver is host work on the CPU (its hierarchy follows the hole's shape), and
// its result depends on data, so the op has no fake kernel: it is not meant to be traced. CUDA
// tensors reach the same function, which answers that the solver runs on the CPU.
TORCH_LIBRARY_FRAGMENT(fastinpaint, m) {
  m.def(
      "biharmonic_solve(Tensor image, Tensor hole, Tensor table, float tol, int max_iter, str isa=\"\", "
      "bool fill=False, Tensor(a!)? out=None) -> (Tensor, Tensor, Tensor, int, float, int, str)");
}
TORCH_LIBRARY_IMPL(fastinpaint, CPU, m) { m.impl("biharmonic_solve", &biharmonic_solve); }
TORCH_LIBRARY_IMPL(fastinpaint, CUDA, m) { m.impl("biharmonic_solve", &biharmonic_solve); }

}  // namespace fastinpaint
