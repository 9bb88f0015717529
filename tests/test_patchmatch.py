"""PatchMatch kernels and ops: fastinpaint.ops.nnf / fastinpaint.ops.vote.

Checked against independent references (exact brute-force nearest neighbours, a NumPy voting
loop), for the CPU backend and for the CUDA kernels run on the CPU through emulation
(pm_init_kernel, pm_jump_kernel, pm_vote_kernel in csrc/cuda/patchmatch.cu), which must give
the very same field as the CPU for a seed. Real-GPU tests skip without a GPU.
"""

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import fastinpaint
from fastinpaint.ops import nnf, valid_centres, vote
from conftest import requires_emulation

ROOT = Path(__file__).resolve().parents[1]
PHOTOS = ROOT.parent / "shared" / "data" / "photos"
needs_gpu = pytest.mark.skipif(
    not (torch.cuda.is_available() and fastinpaint.built_with_cuda()), reason="needs a CUDA GPU and the CUDA build"
)


def smooth_image(c, h, w, seed=0):
    """Random but spatially correlated (like a photo, unlike white noise): propagation matters."""
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(1, c, h // 4 + 2, w // 4 + 2, generator=g)
    x = F.interpolate(x, size=(h, w), mode="bicubic", align_corners=False)[0]
    return (x + 0.05 * torch.rand(c, h, w, generator=g)).contiguous()


def photo_crop(h, w):
    """A downscaled crop of a development photo, or a smooth synthetic image without ../shared."""
    path = PHOTOS / "astronaut.png"
    if not path.exists():
        return smooth_image(3, h, w, seed=3)
    from PIL import Image

    img = Image.open(path).convert("RGB").resize((2 * w, 2 * h), Image.BOX).crop((w // 2, h // 2, w // 2 + w, h // 2 + h))
    return torch.from_numpy(np.asarray(img).astype(np.float32) / 255).permute(2, 0, 1).contiguous()


def exact_distances(target, source, p, source_valid=None, target_weight=None):
    """Brute force: for every target pixel, the minimum normalised weighted SSD over all valid
    source centres (the definition the op documents)."""
    c, ht, wt = target.shape
    r = p // 2
    w = torch.ones(ht, wt) if target_weight is None else target_weight
    tp = F.unfold(target[None], p, padding=r)[0].T.reshape(ht * wt, c, p * p)  # zero-padded
    wp = F.unfold(w[None, None], p, padding=r)[0].T  # (L, p*p); 0 outside the image
    sp = F.unfold(source[None], p)[0].T.reshape(-1, c, p * p)
    hs, ws = source.shape[1:]
    centres = valid_centres(torch.ones(hs, ws) if source_valid is None else source_valid, p)
    keep = centres[r : hs - r, r : ws - r].reshape(-1)
    sp = sp[keep]
    d = ((tp[:, None] - sp[None]) ** 2).sum(2)  # (L, S, p*p)
    ssd = (d * wp[:, None]).sum(2)
    return ssd.min(1).values / wp.sum(1)


def ssd_of_field(target, source, field, p, target_weight=None):
    """Normalised weighted SSD of every target pixel to the source patch its field names."""
    c, ht, wt = target.shape
    r = p // 2
    a = target.numpy()
    b = source.numpy()
    w = np.ones((ht, wt), np.float64) if target_weight is None else target_weight.numpy()
    out = np.zeros((ht, wt))
    for y in range(ht):
        for x in range(wt):
            sy, sx = field[y, x].tolist()
            tot = num = 0.0
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    ty, tx = y + dy, x + dx
                    if 0 <= ty < ht and 0 <= tx < wt:
                        num += w[ty, tx] * float(((a[:, ty, tx] - b[:, sy + dy, sx + dx]) ** 2).sum())
                        tot += w[ty, tx]
            out[y, x] = num / tot
    return torch.from_numpy(out)


# ------------------------------------------------------------------------------------------------
# quality against brute force
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("propagation", ["scan", "jump"])
@pytest.mark.parametrize("kind", ["smooth", "photo"])
def test_nnf_close_to_exact(propagation, kind):
    p = 5
    if kind == "smooth":
        target, source = smooth_image(3, 30, 34, seed=1), smooth_image(3, 32, 30, seed=2)
    else:
        full = photo_crop(40, 64)
        target, source = full[:, :, :32].contiguous(), full[:, :, 32:].contiguous()
    exact = exact_distances(target, source, p).mean().item()
    _, dist = nnf(target, source, p, propagation=propagation, seed=0)  # default iterations
    tolerance = 1.05 if propagation == "jump" else 1.06
    assert dist.mean().item() <= exact * tolerance, (dist.mean().item(), exact)


@pytest.mark.parametrize("propagation", ["scan", "jump"])
def test_nnf_converges(propagation):
    """More iterations never hurt, and a few are enough to approach the exact field."""
    target, source = smooth_image(3, 32, 32, seed=4), smooth_image(3, 32, 32, seed=5)
    exact = exact_distances(target, source, 7).mean().item()
    means = [nnf(target, source, 7, iterations=i, propagation=propagation, seed=1)[1].mean().item() for i in (0, 1, 2, 4, 8)]
    assert all(b <= a + 1e-9 for a, b in zip(means, means[1:])), means
    assert means[0] > 1.5 * exact  # random start is far from the optimum
    assert means[-1] <= 1.03 * exact, (means, exact)


def test_distance_matches_field_and_weights(backend):
    """The returned distance is the documented normalised, weighted SSD of the returned field, on
    every backend (scan order on the CPU only)."""
    target, source = smooth_image(2, 14, 17, seed=6), smooth_image(2, 15, 13, seed=7)
    weight = torch.rand(14, 17, generator=torch.Generator().manual_seed(0)) + 0.1
    dev = backend.device
    for propagation in ("scan", "jump") if backend.name == "cpu" else ("jump",):
        with backend.context():
            field, dist = nnf(target.to(dev), source.to(dev), 5, target_weight=weight.to(dev),
                              propagation=propagation, seed=3)
        field, dist = field.cpu(), dist.cpu()
        ref = ssd_of_field(target, source, field, 5, weight)
        torch.testing.assert_close(dist.double(), ref, rtol=1e-4, atol=1e-6)
    exact = exact_distances(target, source, 5, target_weight=weight).mean().item()
    assert dist.mean().item() <= exact * 1.05


@pytest.mark.parametrize("propagation", ["scan", "jump"])
def test_never_matches_an_invalid_source(propagation):
    target, source = smooth_image(3, 24, 24, seed=8), smooth_image(3, 28, 26, seed=9)
    g = torch.Generator().manual_seed(1)
    scattered = torch.rand(28, 26, generator=g) > 0.15  # invalid pixels everywhere: few valid centres
    scattered[10:20, 5:15] = True
    blobs = torch.ones(28, 26, dtype=torch.bool)  # holes as in inpainting
    blobs[3:12, 4:16] = False
    blobs[18:25, 10:24] = False
    for source_valid in (scattered, blobs):
        centres = valid_centres(source_valid, 3)
        field, dist = nnf(target, source, 3, source_valid=source_valid, propagation=propagation, seed=2)
        ys, xs = field[..., 0].long(), field[..., 1].long()
        assert (ys >= 0).all() and (xs >= 0).all()
        assert centres[ys, xs].all()
    # and it still finds close-to-best matches among the valid ones (5x5: 3x3 patches are too
    # incoherent for propagation to help much, on any valid set)
    exact = exact_distances(target, source, 5, source_valid=blobs).mean().item()
    _, dist = nnf(target, source, 5, source_valid=blobs, propagation=propagation, seed=2)
    assert dist.mean().item() <= exact * 1.06, (dist.mean().item(), exact)


def test_valid_centres_definition(backend):
    v = torch.ones(9, 10, dtype=torch.bool)
    v[4, 6] = False
    with backend.context():
        c = valid_centres(v.to(backend.device), 3).cpu()
    expected = torch.zeros(9, 10, dtype=torch.bool)
    expected[1:8, 1:9] = True
    expected[3:6, 5:8] = False
    assert torch.equal(c, expected)


def test_same_seed_same_field_other_seed_other_field():
    target, source = smooth_image(3, 20, 22, seed=10), smooth_image(3, 21, 20, seed=11)
    for propagation in ("scan", "jump"):
        a = nnf(target, source, 5, propagation=propagation, seed=123, iterations=1)
        b = nnf(target, source, 5, propagation=propagation, seed=123, iterations=1)
        c = nnf(target, source, 5, propagation=propagation, seed=124, iterations=1)
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
        assert not torch.equal(a[0], c[0])


def test_thread_count_does_not_change_the_field():
    target, source = smooth_image(3, 40, 24, seed=12), smooth_image(3, 30, 30, seed=13)
    threads = torch.get_num_threads()
    try:
        results = []
        for n in (1, 2, 3):
            torch.set_num_threads(n)
            results.append([nnf(target, source, 5, propagation=p, seed=5) for p in ("scan", "jump")])
    finally:
        torch.set_num_threads(threads)
    for other in results[1:]:
        for (f0, d0), (f1, d1) in zip(results[0], other):
            assert torch.equal(f0, f1) and torch.equal(d0, d1)


def test_active_and_init():
    target, source = smooth_image(3, 18, 20, seed=14), smooth_image(3, 18, 20, seed=15)
    active = torch.zeros(18, 20, dtype=torch.bool)
    active[5:12, 3:9] = True
    field, dist = nnf(target, source, 5, active=active, seed=0)
    assert (field[~active] == -1).all() and torch.isinf(dist[~active]).all()
    assert (field[active] >= 0).all() and torch.isfinite(dist[active]).all()
    # init with the identity on an image matched against itself: already optimal, kept exactly
    ys, xs = torch.meshgrid(torch.arange(18), torch.arange(20), indexing="ij")
    ident = torch.stack([ys, xs], -1).int()
    field, dist = nnf(target, target, 5, init=ident, iterations=0)
    inner = (slice(2, 16), slice(2, 18))  # centres whose patch fits in the source
    assert torch.equal(field[inner], ident[inner]) and (dist[inner] == 0).all()
    assert (field[0, 0] != -1).all()  # invalid init entries are replaced by valid random centres


# ------------------------------------------------------------------------------------------------
# voting
# ------------------------------------------------------------------------------------------------
def vote_reference(source, field, p, weight):
    c, hs, ws = source.shape
    h, w = field.shape[:2]
    r = p // 2
    out = np.zeros((c, h, w))
    tot = np.zeros((h, w))
    src, f, wt = source.numpy(), field.numpy(), weight.numpy()
    for y in range(h):
        for x in range(w):
            for qy in range(y - r, y + r + 1):
                for qx in range(x - r, x + r + 1):
                    if not (0 <= qy < h and 0 <= qx < w) or f[qy, qx, 0] < 0 or wt[qy, qx] <= 0:
                        continue
                    sy, sx = f[qy, qx, 0] + y - qy, f[qy, qx, 1] + x - qx
                    out[:, y, x] += wt[qy, qx] * src[:, sy, sx]
                    tot[y, x] += wt[qy, qx]
    nz = tot > 0
    out[:, nz] /= tot[nz]
    return torch.from_numpy(out), torch.from_numpy(tot)


def test_vote_matches_numpy_reference(backend):
    source = smooth_image(4, 16, 15, seed=16)
    target = smooth_image(4, 13, 14, seed=17)
    active = torch.ones(13, 14, dtype=torch.bool)
    active[0:3, 0:4] = False
    field, dist = nnf(target, source, 5, active=active, seed=1)
    weight = torch.exp(-dist / dist[active].median())
    weight[6, 6] = 0.0
    dev = backend.device
    with backend.context():
        out, total = vote(source.to(dev), field.to(dev), 5, weight.to(dev), return_total=True)
    out, total = out.cpu(), total.cpu()
    ref, ref_total = vote_reference(source, field, 5, torch.where(active, weight, torch.zeros_like(weight)))
    torch.testing.assert_close(out.double(), ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(total.double(), ref_total, rtol=1e-5, atol=1e-6)


def plurality_reference(source, field, p, weight):
    """Plurality voting by definition: per pixel, total weight per proposed source pixel, the
    largest wins, ties to the candidate met first (float64 sums: the kernel's float32 sums in the
    same order only matter for exact ties, which this data avoids)."""
    c, hs, ws = source.shape
    h, w = field.shape[:2]
    r = p // 2
    src, f, wt = source.double().numpy(), field.numpy(), weight.double().numpy()
    out, tot = np.zeros((c, h, w)), np.zeros((h, w))
    for y in range(h):
        for x in range(w):
            groups, order = {}, []
            for dy in range(-r, r + 1):
                for dx in range(-r, r + 1):
                    qy, qx = y + dy, x + dx
                    if not (0 <= qy < h and 0 <= qx < w) or f[qy, qx, 0] < 0 or not wt[qy, qx] > 0:
                        continue
                    sy, sx = f[qy, qx, 0] - dy, f[qy, qx, 1] - dx
                    if not (0 <= sy < hs and 0 <= sx < ws):
                        continue
                    if (sy, sx) not in groups:
                        order.append((sy, sx))
                    groups[(sy, sx)] = groups.get((sy, sx), 0.0) + wt[qy, qx]
                    tot[y, x] += wt[qy, qx]
            if order:
                best = max(order, key=lambda k: (groups[k], -order.index(k)))
                out[:, y, x] = src[:, best[0], best[1]]
    return torch.from_numpy(out), torch.from_numpy(tot)


@pytest.mark.parametrize("p", [5, 11])  # candidates gathered in a buffer (up to 9x9), recomputed beyond
def test_plurality_vote_matches_numpy_reference(backend, p):
    source = smooth_image(3, 26, 25, seed=16)
    target = smooth_image(3, 23, 24, seed=17)
    active = torch.ones(23, 24, dtype=torch.bool)
    active[0:3, 0:4] = False
    field, dist = nnf(target, source, p, active=active, iterations=1, seed=1)  # few rounds: many groups
    weight = torch.exp(-dist / dist[active].median())
    weight[6, 6] = 0.0
    dev = backend.device
    with backend.context():
        out, total = vote(source.to(dev), field.to(dev), p, weight.to(dev), return_total=True, reduce="plurality")
    out, total = out.cpu(), total.cpu()
    ref, ref_total = plurality_reference(source, field, p, torch.where(active, weight, torch.zeros_like(weight)))
    # a copy of one source pixel: exact
    assert torch.equal(out.double(), ref)
    torch.testing.assert_close(total.double(), ref_total, rtol=1e-5, atol=1e-6)
    mean = vote(source, field, p, weight, reduce="mean")
    assert not torch.equal(out, mean)  # the two reductions do differ on this data


def test_plurality_vote_copies_what_coherent_patches_agree_on():
    """Two coherent groups of patches disagree about a pixel: the mean blends them, plurality
    copies the value of the heavier group, untouched."""
    source = torch.zeros(1, 12, 12)
    source[0, :, 6:] = 1.0  # a sharp vertical edge
    field = torch.zeros(1, 5, 2, dtype=torch.int32)
    # pixels 0-2 of a 1x5 target copy column 6.. (bright side) coherently; 3-4 copy column 1.. (dark)
    for x in range(5):
        field[0, x] = torch.tensor([5, 6 + x] if x < 3 else [5, x - 2])
    out_mean = vote(source, field, 3)
    out_plur = vote(source, field, 3, reduce="plurality")
    # pixel 2 is covered by patches 1, 2 (bright group, weight 2) and 3 (dark group, weight 1)
    assert 0.0 < float(out_mean[0, 0, 2]) < 1.0
    assert float(out_plur[0, 0, 2]) == 1.0
    assert set(out_plur.unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="reduce must be one of"):
        vote(source, field, 3, reduce="median")


def test_vote_mask_votes_only_the_masked_pixels():
    source = smooth_image(3, 18, 20, seed=26)
    field, dist = nnf(source, source, 5, seed=4)
    weight = torch.exp(-dist / 0.05)
    mask = torch.rand(18, 20, generator=torch.Generator().manual_seed(5)) > 0.6
    full, full_total = vote(source, field, 5, weight, return_total=True)
    part, part_total = vote(source, field, 5, weight, mask=mask, return_total=True)
    assert torch.equal(part[:, mask], full[:, mask]) and torch.equal(part_total[mask], full_total[mask])
    assert not part[:, ~mask].any() and not part_total[~mask].any()
    with pytest.raises(ValueError, match="mask must have shape"):
        vote(source, field, 5, weight, mask=mask[1:])


@pytest.mark.parametrize("propagation", ["scan", "jump"])
def test_every_instruction_set_gives_the_same_field(propagation, monkeypatch):
    """The CPU kernels are compiled once per instruction set; all copies sum patch distances in
    the canonical order of kernels/patchmatch.h, so their fields are equal bit for bit."""
    from fastinpaint._ext import _C

    isas = _C.cpu_isas()
    assert isas[0] == "baseline"
    target = torch.cat([photo_crop(40, 56), smooth_image(2, 40, 56, seed=9)]).contiguous()  # 5 channels: partial registers
    source = smooth_image(5, 36, 44, seed=10)
    weight = torch.rand(40, 56, generator=torch.Generator().manual_seed(3))
    results = []
    for isa in isas:
        monkeypatch.setenv("FASTINPAINT_CPU_ISA", isa)
        for w in (None, weight):
            results.append(nnf(target, source, 7, target_weight=w, propagation=propagation, iterations=3, seed=6))
    for i in range(2, len(results)):
        ref = results[i % 2]
        assert torch.equal(results[i][0], ref[0]) and torch.equal(results[i][1], ref[1]), isas[i // 2]
    monkeypatch.setenv("FASTINPAINT_CPU_ISA", "no-such-isa")
    with pytest.raises(RuntimeError, match="unsupported instruction set"):
        nnf(target, source, 7)


def test_vote_of_identity_reproduces_the_source(backend):
    img = smooth_image(3, 12, 12, seed=18)
    ys, xs = torch.meshgrid(torch.arange(12), torch.arange(12), indexing="ij")
    ident = torch.full((12, 12, 2), -1, dtype=torch.int32)  # border patches do not fit: inactive
    ident[1:11, 1:11] = torch.stack([ys, xs], -1).int()[1:11, 1:11]
    with backend.context():
        out = vote(img.to(backend.device), ident.to(backend.device), 3).cpu()
    torch.testing.assert_close(out[:, 1:11, 1:11], img[:, 1:11, 1:11])


# ------------------------------------------------------------------------------------------------
# CUDA kernels, run on the CPU through emulation: same field, same vote as the CPU backend
# ------------------------------------------------------------------------------------------------
def _emulated(fn):
    with fastinpaint.cuda_emulation():
        return fn()


@requires_emulation
@pytest.mark.parametrize("with_extras", [False, True])
def test_cuda_kernels_emulated_give_the_cpu_field(with_extras):
    """pm_init_kernel + pm_jump_kernel (jump flooding) == the CPU loops, bit for bit."""
    target, source = smooth_image(5, 21, 27, seed=19), smooth_image(5, 23, 19, seed=20)
    kwargs = dict(propagation="jump", iterations=2, seed=99)
    if with_extras:
        g = torch.Generator().manual_seed(3)
        kwargs.update(
            source_valid=torch.rand(23, 19, generator=g) > 0.1,
            target_weight=torch.rand(21, 27, generator=g),
            active=torch.rand(21, 27, generator=g) > 0.3,
            init=torch.randint(-2, 22, (21, 27, 2), generator=g, dtype=torch.int32),
            max_jump=4,
        )
    cpu = nnf(target, source, 5, **kwargs)
    emu = _emulated(lambda: nnf(target, source, 5, **kwargs))
    assert torch.equal(cpu[0], emu[0])
    assert torch.equal(cpu[1], emu[1])


@requires_emulation
def test_cuda_valid_centres_kernel_emulated_equals_cpu():
    """pm_valid_centres_kernel (each centre tests its window) == the CPU's run-length erosion."""
    g = torch.Generator().manual_seed(8)
    for shape, p in [((37, 41), 7), ((20, 9), 5), ((6, 30), 7), ((16, 16), 1)]:
        v = torch.rand(shape, generator=g) > 0.08
        assert torch.equal(_emulated(lambda: valid_centres(v, p)), valid_centres(v, p)), (shape, p)


@requires_emulation
def test_cuda_vote_kernel_emulated_equals_cpu():
    """pm_vote_kernel == the CPU voting loop, bit for bit."""
    source = smooth_image(3, 20, 22, seed=21)
    field, dist = nnf(source, source, 7, seed=2)
    weight = torch.exp(-dist / 0.01)
    mask = dist > dist.median()
    for m in (None, mask):
        for reduce in ("mean", "plurality"):
            cpu = vote(source, field, 7, weight, mask=m, return_total=True, reduce=reduce)
            emu = _emulated(lambda: vote(source, field, 7, weight, mask=m, return_total=True, reduce=reduce))
            assert torch.equal(cpu[0], emu[0]) and torch.equal(cpu[1], emu[1])


@requires_emulation
def test_scan_order_is_cpu_only():
    a = smooth_image(3, 10, 10)
    with fastinpaint.cuda_emulation():
        with pytest.raises(ValueError, match="CPU only"):
            nnf(a, a, 3, propagation="scan")
        field, _ = nnf(a, a, 3)  # default propagation under emulation is jump flooding
        assert field.shape == (10, 10, 2)


@needs_gpu
def test_gpu_field_equals_cpu_field():
    target, source = smooth_image(5, 40, 50, seed=22), smooth_image(5, 45, 38, seed=23)
    kwargs = dict(propagation="jump", iterations=3, seed=7)
    cpu = nnf(target, source, 7, **kwargs)
    gpu = nnf(target.cuda(), source.cuda(), 7, **kwargs)
    assert torch.equal(cpu[0], gpu[0].cpu())
    torch.testing.assert_close(cpu[1], gpu[1].cpu())
    weight = torch.exp(-cpu[1] / cpu[1].median())
    torch.testing.assert_close(vote(source, cpu[0], 7, weight), vote(source.cuda(), cpu[0].cuda(), 7, weight.cuda()).cpu())


# ------------------------------------------------------------------------------------------------
# bad input
# ------------------------------------------------------------------------------------------------
def test_bad_inputs_name_the_problem():
    a = smooth_image(3, 12, 12)
    with pytest.raises(ValueError, match="3-D"):
        nnf(a[0], a)
    with pytest.raises(TypeError, match="float32"):
        nnf(a.double(), a)
    with pytest.raises(ValueError, match="channels"):
        nnf(a, a[:2].contiguous())
    with pytest.raises(ValueError, match="odd"):
        nnf(a, a, 4)
    with pytest.raises(ValueError, match="smaller than one"):
        nnf(a, a[:, :4, :4].contiguous(), 5)
    with pytest.raises(ValueError, match="source_valid must have shape"):
        nnf(a, a, 3, source_valid=torch.ones(5, 5))
    with pytest.raises(ValueError, match="propagation"):
        nnf(a, a, 3, propagation="diagonal")
    with pytest.raises(ValueError, match="no source patch"):
        nnf(a, a, 3, source_valid=torch.zeros(12, 12))
    with pytest.raises(ValueError, match="field must be"):
        vote(a, torch.zeros(12, 12, dtype=torch.int32))
    with pytest.raises(ValueError, match="weight must have shape"):
        vote(a, torch.zeros(12, 12, 2, dtype=torch.int32), 3, torch.ones(3, 3))


def test_ops_compile_and_opcheck(backend):
    """Schema and fake kernels of the three ops on every backend (not differentiable: no autograd
    tests)."""
    checks = ("test_schema", "test_faketensor")
    a = smooth_image(3, 12, 14).to(backend.device)
    with backend.context():
        valid = torch.rand(12, 14, device=backend.device) > 0.2
        torch.library.opcheck(torch.ops.fastinpaint.valid_centres.default, (valid, 3), test_utils=checks)
        centres = valid_centres(valid, 3)
        for sources in ((None, None), (valid, None), (None, centres)):
            torch.library.opcheck(
                torch.ops.fastinpaint.nnf.default, (a, a, 3, *sources, None, None, None, 2, "jump", 0, 5),
                test_utils=checks,
            )
        field, dist = nnf(a, a, 3)
        torch.library.opcheck(torch.ops.fastinpaint.vote.default, (a, field, 3, dist, None), test_utils=checks)
        torch.library.opcheck(
            torch.ops.fastinpaint.vote.default, (a, field, 3, dist, dist > dist.median()), test_utils=checks
        )


def test_precomputed_source_centres_give_the_same_field(backend):
    a = smooth_image(3, 20, 22).to(backend.device)
    valid = torch.rand(20, 22, device=backend.device) > 0.3
    with backend.context():
        f1, d1 = nnf(a, a, 3, source_valid=valid, seed=3)
        f2, d2 = nnf(a, a, 3, source_centres=valid_centres(valid, 3), seed=3)
        with pytest.raises(ValueError, match="not both"):
            nnf(a, a, 3, source_valid=valid, source_centres=valid_centres(valid, 3))
    torch.testing.assert_close(f1, f2, rtol=0, atol=0)
    torch.testing.assert_close(d1, d2, rtol=0, atol=0)


@pytest.mark.parametrize("op", ["nnf", "vote"])
def test_backward_through_the_patchmatch_ops_is_a_clear_error(op):
    """Neither op is differentiable (the field is discrete): a backward through one is an error
    naming it, not a None gradient behind PyTorch's generic warning."""
    g = torch.Generator().manual_seed(3)
    a = torch.rand(3, 24, 24, generator=g, requires_grad=True)
    field, dist = nnf(a.detach(), a.detach().flip(-1), 5, seed=0)
    out = vote(a, field, 5) if op == "vote" else nnf(a, a.detach().flip(-1), 5, seed=0)[1]
    with pytest.raises(RuntimeError, match=f"fastinpaint.ops.{op} is not differentiable"):
        out.sum().backward()
    assert a.grad is None
    with torch.no_grad():  # forward alone is unchanged
        again = vote(a, field, 5) if op == "vote" else nnf(a, a.detach().flip(-1), 5, seed=0)[1]
    assert torch.equal(again, out.detach())
