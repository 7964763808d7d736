"""Draw a QR code in a terminal, for the demo's curl session.

``python example_app/terminal_qr.py TEXT`` prints the QR code of ``TEXT`` with Unicode half
blocks, two modules per character, light modules drawn (for the usual dark terminal), so an
authenticator app can scan the screen.
"""

from __future__ import annotations

import sys

import zxingcpp
from PIL import Image

#: A character for each (upper module light, lower module light).
HALF_BLOCKS = {(True, True): "█", (True, False): "▀", (False, True): "▄", (False, False): " "}


def terminal_qr(text: str) -> str:
    """The QR code of ``text`` as lines of half-block characters."""
    symbol = zxingcpp.create_barcode(text, zxingcpp.BarcodeFormat.QRCode, ec_level="M")
    # One pixel per module, with the standard's quiet zone: dark modules are 0.
    image = Image.fromarray(symbol.to_image(scale=1, add_quiet_zones=True))
    width, height = image.size
    light = [[image.getpixel((x, y)) != 0 for x in range(width)] for y in range(height)]
    if height % 2:
        light.append([True] * width)  # the quiet zone continues below
    return "\n".join(
        "".join(HALF_BLOCKS[upper, lower] for upper, lower in zip(top, bottom, strict=True))
        for top, bottom in zip(light[::2], light[1::2], strict=True)
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python example_app/terminal_qr.py TEXT")
    print(terminal_qr(sys.argv[1]))
