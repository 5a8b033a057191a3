#!/usr/bin/env python3
"""Small test images and the pixels Pillow and transformers make of them, for test/io/image-parity.test.ts.

Writes test/parity/fixtures/images/*.png|*.jpg (a few KB in all) and test/parity/fixtures/images/images.json:
  - decoded: each file as Image.open(f).convert("RGB") gives it (uint8, row-major RGB): RGB, grey,
    RGBA, 4-bit palette with tRNS, 16-bit grey, 1-bit, grey with a tRNS colour, JPEG 4:4:4 / 4:2:0 /
    greyscale (Pillow decodes JPEG with libjpeg-turbo's defaults);
  - resize: Image.resize((w, h), filter) of the RGB image for every Pillow filter (uint8);
  - pixel_values: ViT-style preprocessing (resize to 16x16 and to a non-square 20 wide x 12 high, with
    BILINEAR and BICUBIC; one CLIP-style shortest-edge + centre-crop case), computed two ways:
      "pil": Pillow resize + transformers' rescale/normalize arithmetic spelled out below
             (x = float32(uint8 * rescale_factor in float64); (x - float32(mean)) / float32(std) in float32);
      "transformers": ViTImageProcessor / CLIPImageProcessor(...)(image, return_tensors="np") when they
             load; recorded with the processor class and the largest difference to "pil" (full values
             only for rgb_37x23.png with BILINEAR). transformers 5 no longer resizes through Pillow, so
             expect differences of one uint8 level there.
    Float32 values are written in their shortest round-trip form.

Run: python3 test/parity/gen_images.py   (needs Pillow and numpy; transformers optional; no network)
"""
import json
import os

import numpy as np
import PIL
from PIL import Image

ROOT = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(ROOT, "fixtures", "images")
FILTERS = {"NEAREST": 0, "LANCZOS": 1, "BILINEAR": 2, "BICUBIC": 3, "BOX": 4, "HAMMING": 5}


def pattern(w, h, seed):
    """A deterministic RGB test pattern: gradients, a sharp edge and noise (uint8 HxWx3)."""
    rng = np.random.RandomState(seed)
    y, x = np.mgrid[0:h, 0:w]
    r = (x * 255 // max(1, w - 1)).astype(np.int32)
    g = (y * 255 // max(1, h - 1)).astype(np.int32)
    b = np.where((x // 4 + y // 3) % 2 == 0, 230, 20)
    img = np.stack([r, g, b], -1) + rng.randint(-25, 26, size=(h, w, 3))
    return np.clip(img, 0, 255).astype(np.uint8)


def make_images():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    Image.fromarray(pattern(37, 23, 1), "RGB").save(os.path.join(OUT, "rgb_37x23.png"))
    files["rgb_37x23.png"] = "RGB 8-bit"
    Image.fromarray(pattern(64, 48, 2), "RGB").save(os.path.join(OUT, "rgb_64x48.png"))
    files["rgb_64x48.png"] = "RGB 8-bit, for 4x/3x downscaling"
    Image.fromarray(pattern(29, 31, 3)[:, :, 1], "L").save(os.path.join(OUT, "gray_29x31.png"))
    files["gray_29x31.png"] = "grey 8-bit"
    rgba = np.concatenate([pattern(19, 25, 4), (np.arange(19 * 25).reshape(25, 19) % 256).astype(np.uint8)[..., None]], -1)
    Image.fromarray(rgba, "RGBA").save(os.path.join(OUT, "rgba_19x25.png"))
    files["rgba_19x25.png"] = "RGBA 8-bit, varying alpha (dropped by convert)"
    pal = Image.fromarray(pattern(33, 17, 5), "RGB").quantize(colors=16, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    pal.save(os.path.join(OUT, "palette_alpha_33x17.png"), transparency=bytes([0, 128] + [255] * 14))
    files["palette_alpha_33x17.png"] = "palette (4-bit) with tRNS alpha"
    g16 = (np.arange(21 * 13).reshape(13, 21) * 997 % 65536).astype(np.uint16)
    g16[0, :5] = [0, 1, 254, 255, 256]
    Image.fromarray(g16).save(os.path.join(OUT, "gray16_21x13.png"))
    files["gray16_21x13.png"] = "grey 16-bit (Pillow clips to 255 on convert)"
    bw = Image.fromarray(((np.arange(24 * 10).reshape(10, 24) % 7) < 3).astype(np.uint8) * 255, "L").convert("1")
    bw.save(os.path.join(OUT, "bw_24x10.png"))
    files["bw_24x10.png"] = "1-bit"
    grey_trns = Image.fromarray(pattern(15, 9, 6)[:, :, 0], "L")
    grey_trns.save(os.path.join(OUT, "gray_trns_15x9.png"), transparency=int(pattern(15, 9, 6)[0, 0, 0]))
    files["gray_trns_15x9.png"] = "grey with a tRNS transparent colour (kept by convert)"
    Image.fromarray(pattern(41, 27, 7), "RGB").save(os.path.join(OUT, "rgb444_41x27.jpg"), quality=95, subsampling=0)
    files["rgb444_41x27.jpg"] = "JPEG 4:4:4, quality 95"
    Image.fromarray(pattern(40, 30, 8), "RGB").save(os.path.join(OUT, "rgb420_40x30.jpg"), quality=90)
    files["rgb420_40x30.jpg"] = "JPEG 4:2:0, quality 90"
    Image.fromarray(pattern(23, 19, 9)[:, :, 2], "L").save(os.path.join(OUT, "gray_23x19.jpg"), quality=92)
    files["gray_23x19.jpg"] = "greyscale JPEG"
    return files


def f32_list(a):
    return [float(str(np.float32(v))) for v in np.asarray(a, dtype=np.float32).ravel()]


def pil_pixel_values(rgb, cfg):
    """transformers' slow image-processor arithmetic on a Pillow image (see module docstring)."""
    img = rgb
    if cfg.get("do_resize", True):
        size = cfg["size"]
        if "shortest_edge" in size:
            w, h = img.size
            short, long = (w, h) if w <= h else (h, w)
            new_short, new_long = size["shortest_edge"], int(size["shortest_edge"] * long / short)
            tw, th = (new_short, new_long) if w <= h else (new_long, new_short)
        else:
            tw, th = size["width"], size["height"]
        img = img.resize((tw, th), resample=cfg.get("resample", 2))
    arr = np.array(img)
    if cfg.get("do_center_crop"):
        ch, cw = cfg["crop_size"]["height"], cfg["crop_size"]["width"]
        top, left = (arr.shape[0] - ch) // 2, (arr.shape[1] - cw) // 2
        arr = arr[top:top + ch, left:left + cw]
    x = (arr.astype(np.float64) * cfg.get("rescale_factor", 1 / 255)).astype(np.float32)
    mean = np.array(cfg.get("image_mean", [0.5] * 3), dtype=np.float32)
    std = np.array(cfg.get("image_std", [0.5] * 3), dtype=np.float32)
    x = (x - mean) / std
    return x.transpose(2, 0, 1)[None]


def transformers_pixel_values(rgb, cfg):
    try:
        import transformers
        from transformers import CLIPImageProcessor, ViTImageProcessor
    except Exception as e:  # noqa: BLE001
        return {"error": f"transformers unavailable: {e}"}
    cls = CLIPImageProcessor if cfg.get("do_center_crop") else ViTImageProcessor
    try:
        proc = cls(**cfg)
        pv = np.asarray(proc(images=rgb, return_tensors="np")["pixel_values"], dtype=np.float32)
        return {"class": f"{type(proc).__module__}.{type(proc).__name__}", "transformers": transformers.__version__, "pixel_values": pv}
    except Exception as e:  # noqa: BLE001
        return {"error": f"{type(e).__name__}: {e}"}


def main():
    files = make_images()
    data = {"generator": {"pillow": PIL.__version__, "numpy": np.__version__, "script": "test/parity/gen_images.py"}, "files": files,
            "decoded": {}, "resize": [], "pixel_values": []}
    rgb = {}
    for name in files:
        im = Image.open(os.path.join(OUT, name))
        data["decoded"][name] = {"mode": im.mode, "width": im.size[0], "height": im.size[1]}
        rgb[name] = im.convert("RGB")
        data["decoded"][name]["rgb"] = np.array(rgb[name]).ravel().tolist()
    resize_cases = [(name, fname, size) for name in ["rgb_37x23.png", "rgb_64x48.png", "gray_29x31.png"]
                    for fname in FILTERS for size in [(16, 16), (20, 12)]]
    resize_cases += [("rgb_37x23.png", fname, (50, 30)) for fname in ("NEAREST", "LANCZOS", "BILINEAR", "BICUBIC")]
    resize_cases += [("rgb_37x23.png", fname, (37, 11)) for fname in ("BILINEAR", "BICUBIC")]  # vertical pass only
    resize_cases += [("rgb_37x23.png", fname, (12, 23)) for fname in ("BILINEAR", "BOX")]  # horizontal pass only
    for name, fname, (w, h) in resize_cases:
        out = rgb[name].resize((w, h), resample=FILTERS[fname])
        data["resize"].append({"image": name, "filter": fname, "resample": FILTERS[fname], "width": w, "height": h,
                               "rgb": np.array(out).ravel().tolist()})
    configs = []
    for fid in (2, 3):
        configs.append({"do_resize": True, "size": {"height": 16, "width": 16}, "resample": fid, "do_rescale": True,
                        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5]})
        configs.append({"do_resize": True, "size": {"height": 12, "width": 20}, "resample": fid, "do_rescale": True,
                        "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": [0.485, 0.456, 0.406], "image_std": [0.229, 0.224, 0.225]})
    clip = {"do_resize": True, "size": {"shortest_edge": 14}, "resample": 3, "do_center_crop": True, "crop_size": {"height": 12, "width": 12},
            "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
            "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711]}
    for name in ["rgb_37x23.png", "gray_29x31.png", "palette_alpha_33x17.png", "rgb444_41x27.jpg"]:
        for cfg in configs + ([clip] if name in ("rgb_37x23.png", "rgb444_41x27.jpg") else []):
            pv = pil_pixel_values(rgb[name], cfg)
            entry = {"image": name, "config": cfg, "shape": list(pv.shape), "pil": f32_list(pv)}
            tr = transformers_pixel_values(rgb[name], cfg)
            if "pixel_values" in tr:
                tv = tr.pop("pixel_values")
                tr["shape"] = list(tv.shape)
                tr["max_abs_diff_to_pil"] = float(np.abs(tv - pv).max()) if tv.shape == pv.shape else None
                # The full values of two cases are enough to compare against; the rest keep the difference only.
                if tr["max_abs_diff_to_pil"] != 0.0 and name == "rgb_37x23.png" and cfg["resample"] == 2:
                    tr["pixel_values"] = f32_list(tv)
            entry["transformers"] = tr
            data["pixel_values"].append(entry)
    path = os.path.join(OUT, "images.json")
    with open(path, "w") as f:
        json.dump(data, f, separators=(",", ":"))
        f.write("\n")
    for e in data["pixel_values"]:
        print(e["image"], e["config"]["size"], e["config"]["resample"], e["transformers"].get("class", e["transformers"].get("error")),
              e["transformers"].get("max_abs_diff_to_pil"))
    print(f"wrote {path} ({os.path.getsize(path)} bytes)")


if __name__ == "__main__":
    main()
