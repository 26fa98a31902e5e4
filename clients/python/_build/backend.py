"""A PEP 517 / PEP 660 build backend for the taba package, standard library
only: it writes the wheel (a zip of taba/ and its .dist-info) and the sdist
by hand, so that `pip install ./clients/python` needs nothing from the
network. The name, version and Python requirement come from pyproject.toml.
"""

import base64
import hashlib
import io
import os
import re
import tarfile
import time
import zipfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PACKAGE = "taba"


def _project():
    with open(os.path.join(ROOT, "pyproject.toml"), encoding="utf-8") as f:
        text = f.read()
    section = text.split("[project]", 1)[1]
    fields = {}
    for key in ("name", "version", "description", "requires-python"):
        m = re.search(r'^%s\s*=\s*"([^"]*)"' % re.escape(key), section, re.M)
        if not m:
            raise RuntimeError("pyproject.toml: [project] %s is missing" % key)
        fields[key] = m.group(1)
    return fields


def _metadata(p):
    return (
        "Metadata-Version: 2.1\n"
        "Name: %s\n"
        "Version: %s\n"
        "Summary: %s\n"
        "Requires-Python: %s\n" % (p["name"], p["version"], p["description"], p["requires-python"])
    )


def _wheel_meta():
    return "Wheel-Version: 1.0\nGenerator: taba-backend\nRoot-Is-Purelib: true\nTag: py3-none-any\n"


def _sources():
    """(path in the archive, absolute path) of every file of the package."""
    out = []
    for directory, dirs, files in os.walk(os.path.join(ROOT, PACKAGE)):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                out.append((os.path.relpath(path, ROOT).replace(os.sep, "/"), path))
    return out


def _dist_info(p):
    return "%s-%s.dist-info" % (p["name"], p["version"])


def _write_wheel(wheel_directory, files):
    """files: [(archive path, bytes)]; writes the wheel with its RECORD."""
    p = _project()
    dist_info = _dist_info(p)
    files = files + [
        (dist_info + "/METADATA", _metadata(p).encode()),
        (dist_info + "/WHEEL", _wheel_meta().encode()),
    ]
    record = []
    for path, data in files:
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append("%s,sha256=%s,%d" % (path, digest, len(data)))
    record.append(dist_info + "/RECORD,,")
    files.append((dist_info + "/RECORD", ("\n".join(record) + "\n").encode()))
    name = "%s-%s-py3-none-any.whl" % (p["name"], p["version"])
    with zipfile.ZipFile(os.path.join(wheel_directory, name), "w", zipfile.ZIP_DEFLATED) as z:
        for path, data in files:
            info = zipfile.ZipInfo(path, date_time=(2020, 1, 1, 0, 0, 0))
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            z.writestr(info, data)
    return name


def get_requires_for_build_wheel(config_settings=None):
    return []


def get_requires_for_build_sdist(config_settings=None):
    return []


def get_requires_for_build_editable(config_settings=None):
    return []


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    p = _project()
    target = os.path.join(metadata_directory, _dist_info(p))
    os.makedirs(target, exist_ok=True)
    with open(os.path.join(target, "METADATA"), "w", encoding="utf-8") as f:
        f.write(_metadata(p))
    with open(os.path.join(target, "WHEEL"), "w", encoding="utf-8") as f:
        f.write(_wheel_meta())
    return _dist_info(p)


prepare_metadata_for_build_editable = prepare_metadata_for_build_wheel


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    files = []
    for archive_path, path in _sources():
        with open(path, "rb") as f:
            files.append((archive_path, f.read()))
    return _write_wheel(wheel_directory, files)


_EDITABLE_FINDER = """\"\"\"Imports the package taba from its source tree (an editable install).\"\"\"
import importlib.util
import sys

_PACKAGE = %r


class _Finder:
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name != "taba":
            return None
        return importlib.util.spec_from_file_location(
            name, _PACKAGE + "/__init__.py", submodule_search_locations=[_PACKAGE])


sys.meta_path.append(_Finder)
"""


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    # A finder for the name `taba` only, so that edits take effect at once
    # without putting the rest of clients/python (tests/) on sys.path.
    finder = _EDITABLE_FINDER % os.path.join(ROOT, PACKAGE)
    return _write_wheel(wheel_directory, [("_taba_editable.py", finder.encode()),
                                          ("taba_editable.pth", b"import _taba_editable\n")])


def build_sdist(sdist_directory, config_settings=None):
    p = _project()
    base = "%s-%s" % (p["name"], p["version"])
    name = base + ".tar.gz"
    members = [("pyproject.toml", os.path.join(ROOT, "pyproject.toml")),
               ("_build/backend.py", os.path.join(ROOT, "_build", "backend.py"))]
    members += _sources()
    with tarfile.open(os.path.join(sdist_directory, name), "w:gz", format=tarfile.PAX_FORMAT) as tar:
        pkg_info = _metadata(p).encode()
        info = tarfile.TarInfo(base + "/PKG-INFO")
        info.size = len(pkg_info)
        info.mtime = int(time.time())
        tar.addfile(info, io.BytesIO(pkg_info))
        for archive_path, path in members:
            tar.add(path, arcname=base + "/" + archive_path)
    return name
