"""Every test in this folder runs on both VMs: the native one and the Python reference."""
import os

import pytest

from nimble import settings


@pytest.fixture(params=["native", "python"], autouse=True, scope="module")
def vm_backend(request):
    """Sets ``NIMBLE_VM`` for the module; fixtures that build VMs depend on it."""
    old = os.environ.get("NIMBLE_VM")
    os.environ["NIMBLE_VM"] = request.param
    settings.reload()
    yield request.param
    if old is None:
        os.environ.pop("NIMBLE_VM", None)
    else:
        os.environ["NIMBLE_VM"] = old
    settings.reload()
