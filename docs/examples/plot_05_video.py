"""
A short video
=============

``impasto.stylize_video`` keeps consecutive frames consistent after Ruder et al. (2016): each frame after the first
starts from the previous result warped by optical flow, and a temporal loss holds it there. The clip here is the
sample scene panned across, eight frames as a folder of PNGs; the result is an animated GIF (``.mp4``, ``.webm``
and a folder of frames work the same). Needs the ``video`` extra.
"""

# %%
# A clip: a window sliding across the sample scene, written as numbered frames.
from pathlib import Path
# sphinx_gallery_thumbnail_number = 2

from PIL import Image, ImageSequence

import impasto
from impasto.samples import sample_content, sample_style

scene = sample_content(480, 270)
frames = Path("pan_frames")
frames.mkdir(exist_ok=True)
for i in range(8):
    scene.crop((12 * i, 0, 12 * i + 320, 240)).save(frames / f"{i:03d}.png")

# %%
# The first frame runs the whole schedule; the later ones 15 warm-started steps each. Below the GIF, frames
# 0, 2, 4 and 6 side by side: the strokes move with the scene instead of flickering.
result = impasto.stylize_video(frames, sample_style(), "pan.gif", size=128, steps=40, later_steps=15,
                               fps=8, progress=False, force=True)
print(result.status, result.frames, "frames at", result.fps, "fps")
for f in sorted(frames.iterdir()):  # the clip's own frames are not part of the page
    f.unlink()
frames.rmdir()

# Frames 0, 2, 4 and 6 of the GIF side by side (in the same cell: the gallery takes the GIF when the cell ends).
with Image.open("pan.gif") as gif:
    picked = [frame.convert("RGB") for i, frame in enumerate(ImageSequence.Iterator(gif)) if i % 2 == 0]
strip = Image.new("RGB", (sum(f.width + 4 for f in picked) - 4, picked[0].height), "white")
for i, f in enumerate(picked):
    strip.paste(f, (i * (f.width + 4), 0))
strip.save("pan_frames.png")
