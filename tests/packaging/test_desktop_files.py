"""The freedesktop files: they pass the desktops' own validators, name the model types Slipway
opens, define the types the system lacks, and install for one person with install.sh."""

import configparser
import os
import shutil
import stat
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

from studio.ui.single_instance import APP_ID

ROOT = Path(__file__).resolve().parents[2]
LINUX = ROOT / "packaging" / "linux"
DESKTOP = LINUX / f"{APP_ID}.desktop"
MIME_XML = LINUX / f"{APP_ID}.xml"
METAINFO = LINUX / f"{APP_ID}.metainfo.xml"
HICOLOR = ROOT / "resources" / "icons" / "hicolor"
MODEL_TYPES = {  # a file of each kind Slipway opens -> the type it must get
    "wine.onnx": "application/x-onnx",
    "model.joblib": "application/x-joblib",
    "model.pkl": "application/x-python-pickle",
    "model.pickle": "application/x-python-pickle",
    "model.skops": "application/x-skops",
}


def needs(tool: str):
    return pytest.mark.skipif(shutil.which(tool) is None,
                              reason=f"{tool} is not installed (./dev test installs it)")


def desktop_entry(path: Path = DESKTOP) -> configparser.SectionProxy:
    parser = configparser.ConfigParser(interpolation=None)
    parser.optionxform = str
    parser.read(path)
    return parser["Desktop Entry"]


def types_of(names, data_home: Path) -> dict[str, str]:
    """What Qt's MIME database (the one the desktop's file managers share) says of each name."""
    script = textwrap.dedent("""
        import sys
        from PySide6.QtCore import QMimeDatabase
        database = QMimeDatabase()
        for name in sys.argv[1:]:
            kind = database.mimeTypeForFile(name, QMimeDatabase.MatchMode.MatchExtension)
            print(name, kind.name(), ",".join(kind.allAncestors()))
    """)
    result = subprocess.run([sys.executable, "-c", script, *names], capture_output=True,
                            text=True, check=True, env={**os.environ, "XDG_DATA_HOME": str(data_home)})
    return {line.split(" ")[0]: line.split(" ", 1)[1] for line in result.stdout.splitlines()}


@needs("desktop-file-validate")
def test_the_desktop_file_passes_desktop_file_validate():
    result = subprocess.run(["desktop-file-validate", "--no-hints", str(DESKTOP)],
                            capture_output=True, text=True)
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout


def test_the_desktop_entry_opens_every_model_type_in_the_app():
    entry = desktop_entry()
    assert set(entry["MimeType"].rstrip(";").split(";")) == set(MODEL_TYPES.values())
    assert entry["Exec"] == "slipway %f"  # one file per launch: each goes to the running window
    assert entry["Icon"] == APP_ID


def test_the_app_names_its_desktop_file_and_has_an_icon(qapp):
    from studio.ui.app import create_app

    app = create_app()
    assert f"{app.desktopFileName()}.desktop" == DESKTOP.name
    sizes = {(size.width(), size.height()) for size in app.windowIcon().availableSizes()}
    assert {(48, 48), (256, 256)} <= sizes


@needs("appstreamcli")
def test_the_metainfo_passes_appstreamcli_validate():
    result = subprocess.run(["appstreamcli", "validate", "--no-net", str(METAINFO)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_metainfo_describes_the_same_application():
    component = ET.parse(METAINFO).getroot()
    assert component.findtext("id") == APP_ID
    assert component.findtext("launchable") == DESKTOP.name
    assert component.findtext("icon") == APP_ID
    assert {m.text for m in component.iter("mediatype")} == set(MODEL_TYPES.values())
    assert component.find("releases/release").get("version") == __import__("studio").__version__


@needs("update-mime-database")
def test_the_mime_package_gives_each_model_file_its_type(tmp_path):
    assert set(types_of(MODEL_TYPES, tmp_path).values()) == {"application/octet-stream "}, (
        "the system knows these types already: the package would not be needed")
    packages = tmp_path / "mime" / "packages"
    packages.mkdir(parents=True)
    shutil.copy(MIME_XML, packages)
    subprocess.run(["update-mime-database", str(tmp_path / "mime")], check=True)
    found = types_of(MODEL_TYPES, tmp_path)
    for name, kind in MODEL_TYPES.items():
        assert found[name].split(" ")[0] == kind, name
    assert "application/x-python-pickle" in found["model.joblib"]  # a joblib file is a pickle
    assert "application/zip" in found["model.skops"]  # a skops file is a zip archive


def test_the_icon_comes_in_the_sizes_desktops_ask_for():
    assert (HICOLOR / "scalable" / "apps" / f"{APP_ID}.svg").is_file()
    for size in (16, 24, 32, 48, 64, 128, 256, 512):  # 48 by the icon theme spec, 64 and 128
        image = QImage(str(HICOLOR / f"{size}x{size}" / "apps" / f"{APP_ID}.png"))  # AppStream
        assert (image.width(), image.height()) == (size, size)
        assert image.hasAlphaChannel()


def test_the_icon_pngs_are_what_the_svg_renders():
    result = subprocess.run([sys.executable, str(ROOT / "packaging" / "render_icons.py"), "--check"],
                            capture_output=True, text=True,
                            env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert result.returncode == 0, result.stderr


@pytest.fixture
def bundle(tmp_path):
    """A folder laid out as packaging/build.sh lays out dist/slipway, with a stand-in program."""
    folder = tmp_path / "slipway"
    share = folder / "share"
    for source, destination in ((DESKTOP, "applications"), (MIME_XML, "mime/packages"),
                                (METAINFO, "metainfo")):
        (share / destination).mkdir(parents=True)
        shutil.copy(source, share / destination)
    shutil.copytree(HICOLOR, share / "icons" / "hicolor")
    shutil.copy(ROOT / "packaging" / "install.sh", folder)
    program = folder / "slipway"
    program.write_text("#!/bin/sh\necho slipway 0.1.0\n")
    program.chmod(program.stat().st_mode | stat.S_IXUSR)
    return folder


def install(bundle: Path, prefix: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["bash", str(bundle / "install.sh"), "--prefix", str(prefix), *args],
                          capture_output=True, text=True, check=True)


def test_install_sh_sets_the_app_up_for_one_person_and_uninstall_removes_it(bundle, tmp_path):
    prefix = tmp_path / "home" / ".local"
    install(bundle, prefix)
    app = prefix / "lib" / "slipway-studio" / "slipway"
    assert subprocess.run([prefix / "bin" / "slipway"], capture_output=True,
                          text=True).stdout == "slipway 0.1.0\n"
    installed = prefix / "share" / "applications" / DESKTOP.name
    entry = desktop_entry(installed)
    assert entry["Exec"] == f'"{app}" %f'  # a desktop session's PATH may lack ~/.local/bin
    assert entry["TryExec"] == str(app)
    assert (prefix / "share" / "metainfo" / METAINFO.name).is_file()
    assert (prefix / "share" / "icons" / "hicolor" / "48x48" / "apps" / f"{APP_ID}.png").is_file()
    if shutil.which("desktop-file-validate"):
        validated = subprocess.run(["desktop-file-validate", "--no-hints", str(installed)],
                                   capture_output=True, text=True)
        assert validated.returncode == 0, validated.stdout
    if shutil.which("update-mime-database"):
        assert types_of(["a.onnx"], prefix / "share")["a.onnx"].startswith("application/x-onnx")

    install(bundle, prefix, "--uninstall")
    assert not (prefix / "lib" / "slipway-studio").exists()
    assert not (prefix / "bin" / "slipway").exists()
    assert not installed.exists()
    assert not list((prefix / "share" / "icons").rglob(f"{APP_ID}.*"))
