"""GLCIC: completion network and discriminators, Poisson blending, training phases, inference."""

import numpy as np
import pytest
import torch

from fastinpaint.methods.glcic import inpaint_glcic
from fastinpaint.blending import poisson_blend
from fastinpaint.nn.glcic import GLCIC, GLCICDiscriminator, GlobalDiscriminator, LocalDiscriminator
from fastinpaint.training.glcic import glcic_step, hole_crop_boxes, masked_mse


def _hole(n, h, w, boxes):
    m = torch.zeros(n, 1, h, w)
    for i, (t, b, l, r) in enumerate(boxes):
        m[i, :, t:b, l:r] = 1
    return m


# ------------------------------------------------------------------------------------------------
# networks
# ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("size", [(37, 53), (32, 32), (5, 7), (1, 1)])
def test_glcic_any_size(size):
    torch.manual_seed(0)
    net = GLCIC(width=4).eval()
    img = torch.rand(2, 3, *size)
    hole = torch.zeros(2, 1, *size)
    hole[..., : size[0] // 2 + 1, : size[1] // 2 + 1] = 1
    out = net(img, hole)
    assert out.shape == img.shape
    assert (out > 0).all() and (out < 1).all()  # sigmoid


def test_glcic_layout_matches_paper():
    net = GLCIC()
    dil = [m.dilation[0] for m in net.dilated.modules() if isinstance(m, torch.nn.Conv2d)]
    assert dil == [2, 4, 8, 16]
    strided = [m for m in net.encoder.modules() if isinstance(m, torch.nn.Conv2d) and m.stride[0] == 2]
    assert len(strided) == 2  # down 4x
    deconvs = [m for m in net.decoder.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert len(deconvs) == 2
    assert net.encoder[0][0].in_channels == 4  # RGB + mask


def test_glcic_input_fills_hole_with_mean_and_adds_mask():
    net = GLCIC(width=4, fill_mean=[0.1, 0.2, 0.3])
    img = torch.rand(1, 3, 8, 8)
    hole = _hole(1, 8, 8, [(2, 5, 3, 6)])
    x = net.network_input(img, hole)
    assert x.shape == (1, 4, 8, 8)
    assert torch.equal(x[:, 3:], hole)
    assert torch.allclose(x[0, :3, 3, 4], torch.tensor([0.1, 0.2, 0.3]))
    assert torch.equal(x[0, :3, 0, 0], img[0, :, 0, 0])
    # the hole's content is invisible to the network
    img2 = img.clone()
    img2[..., 2:5, 3:6] = 0.9
    net.eval()
    assert torch.equal(net(img, hole), net(img2, hole))


def test_glcic_errors():
    net = GLCIC(width=4)
    with pytest.raises(ValueError, match="channels"):
        net(torch.rand(1, 4, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="differs from image size"):
        net(torch.rand(1, 3, 8, 8), torch.zeros(1, 1, 8, 9))
    with pytest.raises(ValueError, match="fill_mean"):
        GLCIC(fill_mean=[0.1, 0.2])


def test_discriminators_shapes_and_size_errors():
    d = GLCICDiscriminator(image_size=(32, 48), local_size=16, width=4, features=8)
    out = d(torch.rand(3, 3, 32, 48), torch.rand(3, 3, 16, 16))
    assert out.shape == (3, 1)
    with pytest.raises(ValueError, match=r"image_size.*32x48|32x48.*image_size"):
        d(torch.rand(3, 3, 32, 32), torch.rand(3, 3, 16, 16))
    with pytest.raises(ValueError, match="local_size"):
        d(torch.rand(3, 3, 32, 48), torch.rand(3, 3, 17, 16))
    with pytest.raises(ValueError, match="larger than image_size"):
        GLCICDiscriminator(image_size=16, local_size=32)
    assert GlobalDiscriminator(64, width=2, features=4)(torch.rand(2, 3, 64, 64)).shape == (2, 4)
    assert LocalDiscriminator(20, width=2, features=4)(torch.rand(2, 3, 20, 20)).shape == (2, 4)
    # the paper's layout: 6 strided convs (global), 5 (local)
    full = GLCICDiscriminator()
    assert sum(isinstance(m, torch.nn.Conv2d) for m in full.global_d.modules()) == 6
    assert sum(isinstance(m, torch.nn.Conv2d) for m in full.local_d.modules()) == 5
    assert full.fc.in_features == 2048 and full.fc.out_features == 1


def test_save_load_roundtrip(tmp_path):
    torch.manual_seed(0)
    net = GLCIC(width=4, fill_mean=[0.5, 0.4, 0.3])
    # non-trivial BatchNorm statistics
    net.train()
    net(torch.rand(2, 3, 16, 16), torch.ones(2, 1, 16, 16))
    net.save(tmp_path / "g.pt")
    loaded = GLCIC.load(tmp_path / "g.pt")
    assert not loaded.training and loaded.fill_mean == net.fill_mean
    net.eval()
    x, m = torch.rand(1, 3, 13, 11), _hole(1, 13, 11, [(2, 9, 3, 8)])
    assert torch.equal(net(x, m), loaded(x, m))
    torch.save({"format": "something.else"}, tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="not a fastinpaint GLCIC checkpoint"):
        GLCIC.load(tmp_path / "bad.pt")
    with pytest.raises(FileNotFoundError):
        GLCIC.load(tmp_path / "missing.pt")


# ------------------------------------------------------------------------------------------------
# Poisson blending
# ------------------------------------------------------------------------------------------------
def _dense_poisson(image, fill, hole):
    """Direct dense solve of the same equations, written independently (per pixel, loops)."""
    h, w, c = image.shape
    pts = [(y, x) for y in range(h) for x in range(w) if hole[y, x]]
    num = {p: i for i, p in enumerate(pts)}
    a = np.zeros((len(pts), len(pts)))
    b = np.zeros((len(pts), c))
    for i, (y, x) in enumerate(pts):
        for dy, dx in ((-1, 0), (1, 0), (0, -1), (0, 1)):
            qy, qx = y + dy, x + dx
            if not (0 <= qy < h and 0 <= qx < w):
                continue
            a[i, i] += 1
            b[i] += fill[y, x] - fill[qy, qx]
            if hole[qy, qx]:
                a[i, num[(qy, qx)]] -= 1
            else:
                b[i] += image[qy, qx]
    out = image.copy()
    sol = np.linalg.solve(a, b)
    for i, (y, x) in enumerate(pts):
        out[y, x] = sol[i]
    return out


def test_poisson_matches_dense_solve():
    rng = np.random.default_rng(0)
    img, fill = rng.random((12, 15, 3)), rng.random((12, 15, 3))
    hole = np.zeros((12, 15), bool)
    hole[3:8, 4:11] = True
    hole[0:3, 12:15] = True  # touches the image border (corner)
    hole[9, 1] = True  # single pixel
    out = poisson_blend(img, fill, hole)
    ref = _dense_poisson(img, fill, hole)
    np.testing.assert_allclose(out, ref, atol=1e-10)
    assert np.array_equal(out[~hole], img[~hole])
    np.testing.assert_allclose(poisson_blend(img, img, hole), img, atol=1e-12)


def test_poisson_torch_and_identity():
    torch.manual_seed(0)
    img = torch.rand(3, 20, 17)
    hole = torch.zeros(20, 17, dtype=torch.bool)
    hole[5:15, 2:9] = True
    out = poisson_blend(img, img, hole)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.allclose(out, img, atol=1e-6)
    fill = torch.rand(3, 20, 17)
    out = poisson_blend(img, fill, hole)
    assert torch.equal(out[:, ~hole], img[:, ~hole])
    # gray numpy (H, W) and a fill differing by a constant: result = image (constant removed)
    g = np.random.default_rng(1).random((9, 9))
    m = np.zeros((9, 9), np.uint8)
    m[2:6, 3:7] = 255
    np.testing.assert_allclose(poisson_blend(g, g + 0.3, m), g, atol=1e-12)
    with pytest.raises(ValueError, match="whole image"):
        poisson_blend(g, g, np.ones((9, 9)))
    with pytest.raises(ValueError, match="hole must be"):
        poisson_blend(g, g, np.ones((9, 8)))


# ------------------------------------------------------------------------------------------------
# training phases
# ------------------------------------------------------------------------------------------------
def _setup(seed=0):
    torch.manual_seed(seed)
    net = GLCIC(width=4)
    disc = GLCICDiscriminator(image_size=32, local_size=16, width=2, features=8)
    opt_c = torch.optim.Adam(net.parameters(), lr=1e-2)
    opt_d = torch.optim.Adam(disc.parameters(), lr=1e-2)
    img = torch.rand(4, 3, 32, 32)
    hole = _hole(4, 32, 32, [(2, 12, 3, 15), (20, 31, 20, 30), (10, 20, 0, 8), (0, 32, 14, 18)])
    return net, disc, opt_c, opt_d, {"image": img, "mask": hole}


def _snapshot(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _changed(before, module, params_only=True):
    names = {n for n, _ in module.named_parameters()}
    now = module.state_dict()
    return {k for k in before if (k in names or not params_only) and not torch.equal(before[k], now[k])}


@pytest.mark.parametrize("phase,c_changes,d_changes", [("completion", True, False), ("discriminator", False, True),
                                                       ("joint", True, True)])
def test_phase_updates_only_what_it_should(phase, c_changes, d_changes):
    net, disc, opt_c, opt_d, batch = _setup()
    sc, sd = _snapshot(net), _snapshot(disc)
    logs = glcic_step(phase, batch, net, disc, opt_c, opt_d, alpha=4e-4)
    assert all(np.isfinite(v) for v in logs.values())
    params_c = {n for n, _ in net.named_parameters()}
    params_d = {n for n, _ in disc.named_parameters()}
    if c_changes:
        assert _changed(sc, net) == params_c  # every parameter moved
    else:
        assert _changed(sc, net, params_only=False) == set()  # parameters and BatchNorm buffers identical
    if d_changes:
        assert _changed(sd, disc) == params_d
    else:
        assert _changed(sd, disc, params_only=False) == set()


def test_discriminator_phase_sees_detached_completion():
    net, disc, opt_c, opt_d, batch = _setup()
    glcic_step("discriminator", batch, net, disc, None, opt_d)
    assert all(p.grad is None for p in net.parameters())
    with pytest.raises(ValueError, match="needs opt_d"):
        glcic_step("discriminator", batch, net, disc, opt_c, None)
    with pytest.raises(ValueError, match="phase must be one of"):
        glcic_step("global", batch, net, disc, opt_c, opt_d)


def test_completion_steps_lower_mse():
    net, disc, opt_c, opt_d, batch = _setup(1)
    net.eval()
    with torch.no_grad():
        before = masked_mse(net(batch["image"], batch["mask"]), batch["image"], batch["mask"]).item()
    for _ in range(8):
        glcic_step("completion", batch, net, disc, opt_c, None)
    net.eval()
    with torch.no_grad():
        after = masked_mse(net(batch["image"], batch["mask"]), batch["image"], batch["mask"]).item()
    assert after < before


def test_hole_crop_boxes_centred_and_clamped():
    hole = _hole(3, 32, 40, [(10, 14, 20, 24), (0, 3, 0, 2), (29, 32, 38, 40)])
    hole[2] = 0  # no hole: centred patch
    boxes = hole_crop_boxes(hole, (16, 8)).tolist()
    assert boxes[0] == [12 - 8, 22 - 4]
    assert boxes[1] == [0, 0]
    assert boxes[2] == [16 - 8, 20 - 4]
    hole = _hole(1, 32, 40, [(29, 32, 38, 40)])
    assert hole_crop_boxes(hole, 16).tolist() == [[16, 24]]


# ------------------------------------------------------------------------------------------------
# inference
# ------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("glcic") / "glcic_small.pt"
    GLCIC(width=4).save(path)
    return path


@pytest.mark.parametrize("blend", [None, "poisson"])
def test_method_odd_size_known_pixels_exact(weights, blend):
    torch.manual_seed(0)
    img = torch.rand(3, 37, 53)
    hole = torch.zeros(37, 53, dtype=torch.bool)
    hole[5:20, 10:40] = True
    hole[30:37, 0:6] = True
    out = inpaint_glcic(img, hole, weights=str(weights), blend=blend)
    assert out.shape == img.shape and out.dtype == img.dtype
    assert torch.equal(out[:, ~hole], img[:, ~hole])
    assert not torch.equal(out[:, hole], img[:, hole])
    assert out.min() >= 0 and out.max() <= 1
    assert inpaint_glcic.unit_range is True


def test_method_gray_batch_and_model(weights):
    img = torch.rand(1, 21, 19)
    hole = torch.zeros(21, 19, dtype=torch.bool)
    hole[4:9, 4:9] = True
    out = inpaint_glcic(img, hole, weights=weights)
    assert out.shape == (1, 21, 19) and torch.equal(out[:, ~hole], img[:, ~hole])
    net = GLCIC.load(weights).train()
    batch = torch.rand(2, 3, 21, 19)
    out = inpaint_glcic(batch, hole, weights=net)
    assert out.shape == batch.shape and net.training  # mode restored
    assert torch.equal(out[0], inpaint_glcic(batch[0], hole, weights=str(weights)))


def test_method_errors(tmp_path, weights):
    img, hole = torch.rand(3, 8, 8), torch.zeros(8, 8, dtype=torch.bool)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        inpaint_glcic(img, hole, weights=str(tmp_path / "nope.pt"))
    with pytest.raises(ValueError, match="blend must be"):
        inpaint_glcic(img, hole, weights=weights, blend="alpha")
    with pytest.raises(ValueError, match="source_mask"):
        inpaint_glcic(img, hole, weights=weights, source_mask=hole)


def test_joint_completion_gradient_includes_adversarial_term():
    results = []
    for alpha in (0.0, 1.0):
        net, disc, opt_c, opt_d, batch = _setup(2)
        opt_c = torch.optim.SGD(net.parameters(), lr=0.1)
        glcic_step("joint", batch, net, disc, opt_c, opt_d, alpha=alpha)
        results.append(net.output.weight.detach().clone())
    assert not torch.equal(results[0], results[1])


def test_method_single_channel_network(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / "gray.pt"
    GLCIC(channels=1, width=2, fill_mean=[0.5]).save(path)
    img = torch.rand(1, 15, 10)
    hole = torch.zeros(15, 10, dtype=torch.bool)
    hole[3:7, 2:6] = True
    out = inpaint_glcic(img, hole, weights=str(path))
    assert out.shape == img.shape and torch.equal(out[:, ~hole], img[:, ~hole])
    with pytest.raises(ValueError, match="3 channels, the network takes 1"):
        inpaint_glcic(torch.rand(3, 15, 10), hole, weights=str(path))


def test_pushpull_prefill_gives_the_network_the_surrounding_colours(tmp_path):
    net = GLCIC(width=4, prefill="pushpull")
    img = torch.zeros(2, 3, 20, 24)
    img[0] = torch.tensor([0.9, 0.2, 0.1]).view(3, 1, 1)  # flat: the fill must be that colour
    img[1, :, :, :12] = 0.2  # two halves: the fill lies between the two colours
    img[1, :, :, 12:] = 0.8
    hole = torch.zeros(2, 1, 20, 24)
    hole[:, :, 5:15, 6:18] = 1
    x = net.network_input(img * (1 - hole), hole)
    assert torch.equal(x[:, 3:], hole)
    assert torch.allclose(x[0, :3], img[0], atol=1e-6)
    h = hole[1, 0].bool()
    assert float(x[1, :3][:, h].min()) >= 0.2 - 1e-6 and float(x[1, :3][:, h].max()) <= 0.8 + 1e-6
    assert float(x[1, 0, 10, 7]) < float(x[1, 0, 10, 16])  # nearer the dark side, darker
    # the mean-filled network's input holds the constant instead
    mean_net = GLCIC(width=4)
    assert torch.allclose(mean_net.network_input(img, hole)[0, :3][:, h],
                          torch.tensor(mean_net.fill_mean).view(3, 1).expand(3, int(h.sum())))
    # the choice travels with the file; a file without it is a mean-filled network
    net.save(tmp_path / "pp.pt")
    assert GLCIC.load(tmp_path / "pp.pt").prefill == "pushpull"
    mean_net.save(tmp_path / "mean.pt")
    ckpt = torch.load(tmp_path / "mean.pt", weights_only=True)
    assert "prefill" not in ckpt["architecture"] and GLCIC.load(tmp_path / "mean.pt").prefill == "mean"
    with pytest.raises(ValueError, match="prefill must be one of"):
        GLCIC(width=4, prefill="biharmonic")
