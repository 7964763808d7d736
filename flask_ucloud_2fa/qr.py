"""QR codes as ``data:`` URIs of PNG images. Pure, no Flask."""

from __future__ import annotations

import base64
import io

import qrcode
from PIL import Image
from qrcode.constants import ERROR_CORRECT_M

#: Pixels per QR module: large enough for phone cameras, small enough for a settings page.
BOX_SIZE = 6
#: The quiet zone the QR standard asks for, in modules.
BORDER = 4


def qr_png(text: str) -> bytes:
    """A PNG image of a QR code (error correction M) that encodes ``text``."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=1, border=BORDER)
    code.add_data(text)
    code.make(fit=True)
    # One pixel per module, scaled up without smoothing: the same image as qrcode's own PIL
    # renderer, which draws every module as a rectangle and took a third of the setup's time.
    matrix = code.get_matrix()
    size = len(matrix)
    pixels = bytes(0 if dark else 255 for row in matrix for dark in row)
    image = Image.frombytes("L", (size, size), pixels).convert("1")
    image = image.resize((size * BOX_SIZE, size * BOX_SIZE), Image.Resampling.NEAREST)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def qr_data_uri(text: str) -> str:
    """``data:image/png;base64,...`` of a QR code that encodes ``text``."""
    return "data:image/png;base64," + base64.b64encode(qr_png(text)).decode("ascii")
