"""continuum-core installs without a compiler: llama-cpp-python is only in the
[embedded] extra, and asking for the embedded backend without it names the install line."""

import subprocess
import sys
from importlib.metadata import requires


def test_llama_cpp_python_is_only_an_extra():
    reqs = requires("continuum-core") or []
    llama = [r for r in reqs if r.startswith("llama-cpp-python")]
    assert llama and all("extra == 'embedded'" in r.replace('"', "'") for r in llama)


def test_the_embedded_backend_without_the_extra_says_how_to_install_it():
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"
        "from continuum.errors import ModelNotInstalled\n"
        "from continuum.plugins import backends\n"
        "try:\n"
        "    backends()['embedded']()\n"
        "except ModelNotInstalled as exc:\n"
        "    print(exc)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "pip install 'continuum-core[embedded]'" in out.stdout, out.stderr
