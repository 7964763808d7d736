"""QR codes as ``data:`` URIs of PNG images. Pure, no Flask."""

from __future__ import annotations

import base64
import io

import qrcode
from qrcode.constants import ERROR_CORRECT_M

#: Pixels per QR module: large enough for phone cameras, small enough for a settings page.
BOX_SIZE = 6
#: The quiet zone the QR standard asks for, in modules.
BORDER = 4


def qr_png(text: str) -> bytes:
    """A PNG image of a QR code (error correction M) that encodes ``text``."""
    code = qrcode.QRCode(error_correction=ERROR_CORRECT_M, box_size=BOX_SIZE, border=BORDER)
    code.add_data(text)
    code.make(fit=True)
    buffer = io.BytesIO()
    code.make_image().save(buffer)
    return buffer.getvalue()


def qr_data_uri(text: str) -> str:
    """``data:image/png;base64,...`` of a QR code that encodes ``text``."""
    return "data:image/png;base64," + base64.b64encode(qr_png(text)).decode("ascii")
