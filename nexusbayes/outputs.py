"""Output folders: claimed, locked, filled beside, swapped in whole; and CSV files safe to open in a spreadsheet.

A run's folder (``nexusbayes fit``: ``fit.nc``, CSV tables, ``summary.txt``, ``report/``) and a
report's folder (``nexusbayes report``) are written the same way, by :class:`OutputFolder`:

* **claimed before any work**: a symlink, a file, the current folder, a folder holding the input
  being read or files nexusbayes did not write is refused (``--overwrite`` or not); a folder an
  earlier nexusbayes run wrote is replaced only with ``overwrite``. What a run wrote is listed in
  its manifest (:data:`MANIFEST`), so ``overwrite`` never deletes anything else;
* **locked** (``fcntl.flock`` on ``.<name>.lock`` beside the folder) from that check to the end,
  so a second run into the same folder is refused at once rather than mixing its files in; taking
  the lock also proves the parent folder writable, before anything is compiled;
* **filled beside and swapped in whole**: everything is written into a temporary folder next to
  it and renamed into place in one step at the very end, with signals held back during the swap
  (:func:`nexusbayes.interrupts.deferred`). An interruption before that leaves the earlier folder
  exactly as it was.

Every CSV nexusbayes writes goes through :func:`write_csv`, which neutralises spreadsheet formulas.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable, Iterable
from importlib.metadata import version
from pathlib import Path

from nexusbayes import interrupts
from nexusbayes.errors import OutputError, OutputExistsError, SpecError
from nexusbayes.files import temp_dir_beside

#: The saved fit of a run.
FIT_FILE = "fit.nc"
#: The list of what a nexusbayes run wrote into its folder (and so may replace), inside that folder.
MANIFEST = ".nexusbayes-outputs.json"


#: Kinds of output folder: a fit's run folder, a report folder.
RUN, REPORT = "run", "report"


_WHAT = {RUN: "an earlier run", REPORT: "a report"}


_NOUN = {RUN: "a run (fit.nc, CSV tables, report/)", REPORT: "a report"}


def default_out_dir(spec_name: str, base: str | Path = "reports") -> Path:
    """``reports/<name>``; the spec's name pattern keeps it inside ``base``, and this checks it again.

    A name that would resolve outside ``base`` (``..``, an absolute path) is refused with a
    :class:`SpecError` before anything is written; so is ``reports/<name>`` being a symlink, with
    its target named.
    """
    out = Path(base) / spec_name
    if (not spec_name or "\0" in spec_name or Path(spec_name).is_absolute()
            or Path(os.path.abspath(base)) not in Path(os.path.abspath(out)).parents):
        raise SpecError(f"spec name {spec_name!r} would put the output outside {base}/; use only letters, "
                        "digits, '_', '.' and '-' (or pass --out DIR)")
    if out.is_symlink():
        raise SpecError(f"{out} is a symlink (to {out.resolve()}), which nexusbayes does not write through; "
                        f"pass --out {out.resolve()} to write there directly")
    return out


def check_writable(out_dir: Path, overwrite: bool) -> None:
    """Refuse early when ``out_dir`` is not empty and overwriting was not asked (SBC's result folder)."""
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise OutputExistsError(f"{out_dir} already holds an earlier run; pass --overwrite to replace it, "
                                "or --out DIR to write elsewhere")


# ---- output folders ---------------------------------------------------------------------------------
def read_manifest(folder: Path) -> dict | None:
    """The manifest of ``folder`` (kind and entries), or None when it has none or it is not one of ours."""
    path = Path(folder) / MANIFEST
    if path.is_symlink() or not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    entries = data.get("entries") if isinstance(data, dict) else None
    if (data.get("kind") not in _WHAT or not isinstance(entries, list)
            or not all(isinstance(e, str) and e and "/" not in e and e not in (".", "..", MANIFEST)
                       for e in entries)):
        return None
    return data


def write_manifest(folder: Path, kind: str) -> None:
    """List every entry of ``folder`` (written by this run) in its manifest, so a later run may replace them."""
    entries = sorted(p.name for p in Path(folder).iterdir() if p.name != MANIFEST)
    record = {"kind": kind, "written_by": f"nexusbayes {version('nexusbayes')}", "entries": entries}
    (Path(folder) / MANIFEST).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")


def foreign_files(folder: Path) -> list[Path]:
    """Everything in ``folder`` that no nexusbayes manifest lists (looking into listed folders by theirs)."""
    manifest = read_manifest(folder)
    owned = set(manifest["entries"]) if manifest else set()
    foreign = []
    for entry in sorted(Path(folder).iterdir()):
        name = entry.name
        if manifest is not None and name == MANIFEST:
            continue
        if name.startswith(".") and name.endswith(".lock") and name[1:-5] in owned:
            continue                            # the lock of a listed folder (a report being rewritten)
        if name not in owned or entry.is_symlink():
            foreign.append(entry)
        elif entry.is_dir():
            foreign.extend(foreign_files(entry))
    return foreign


def _remove_owned(folder: Path) -> None:
    """Delete what ``folder``'s manifest lists (and the folder, once empty); anything else stays."""
    manifest = read_manifest(folder)
    for name in manifest["entries"] if manifest else ():
        path = folder / name
        if path.is_dir() and not path.is_symlink():
            _remove_owned(path)
        else:
            path.unlink(missing_ok=True)
    (folder / MANIFEST).unlink(missing_ok=True)
    if not any(folder.iterdir()):
        folder.rmdir()


class _Lock:
    """An exclusive ``flock`` on a lock file, refused at once (not waited for) when another process holds it.

    The file is removed on release while still locked; a process that opened it meanwhile finds,
    after locking, that its file is no longer the one at the path, and tries again.
    """

    def __init__(self, path: Path, folder: Path):
        self.path, self.folder, self.fd = path, folder, None

    def acquire(self) -> None:
        for _ in range(20):
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
                os.close(fd)
                raise OutputError(f"another nexusbayes run (process {holder}) is writing {self.folder} (it holds "
                                  f"{self.path}); wait for it to finish, or pass --out DIR to write elsewhere"
                                  ) from None
            try:
                current = os.stat(self.path).st_ino
            except FileNotFoundError:
                current = None
            if current == os.fstat(fd).st_ino:
                os.ftruncate(fd, 0)
                os.write(fd, f"{os.getpid()}\n".encode())
                self.fd = fd
                return
            os.close(fd)                         # removed by its holder while we waited: take the new one
        raise OutputError(f"could not lock {self.path}: other runs keep taking it; try again")

    def release(self) -> None:
        if self.fd is not None:
            self.path.unlink(missing_ok=True)
            os.close(self.fd)
            self.fd = None


class OutputFolder:
    """An output folder claimed for one run: checked, locked, then replaced in one step.

    Use as a context manager around the whole run (the fit included), so that the checks and the
    lock come before any long work and last until the end::

        with OutputFolder(out, RUN, overwrite, inputs=[spec_path]) as folder:
            result = fit(...)
            folder.replace_with(lambda tmp: ...)     # fill tmp; it becomes ``out``

    Parameters
    ----------
    path : path
        The output folder (need not exist; its parent is created).
    kind : {"run", "report"}
        What goes in it; a folder holding the other kind is refused.
    overwrite : bool
        Replace an earlier folder of this kind written by nexusbayes.
    inputs : paths
        Files this run reads: a folder holding any of them is refused.

    Raises
    ------
    OutputExistsError
        The folder holds an input, files nexusbayes did not write, another kind of output, or (without
        ``overwrite``) an earlier output.
    OutputError
        The folder is a symlink, a file or the current folder; its parent is not writable; or another
        run holds its lock.
    """

    def __init__(self, path: str | Path, kind: str, overwrite: bool = False, inputs: Iterable = ()):
        self.given = Path(path)
        self.path = Path(os.path.abspath(path))
        self.kind, self.overwrite = kind, overwrite
        self.inputs = [Path(p) for p in inputs if p is not None]
        self._lock: _Lock | None = None
        self._made: list[Path] = []

    def __enter__(self) -> OutputFolder:
        self.check()
        parent = self.path.parent
        lock = _Lock(parent / f".{self.path.name}.lock", self.given)
        self._made = [p for p in (parent, *parent.parents) if not p.exists()]   # removed again if left empty
        try:
            parent.mkdir(parents=True, exist_ok=True)
            lock.acquire()                      # creates a file beside the folder: the writability probe
        except OutputError:
            raise
        except OSError as exc:
            self._remove_made()
            raise OutputError(f"cannot write the output folder {self.given}: {parent} is not writable "
                              f"({exc.strerror or exc}); pass --out a folder you can write to") from exc
        self._lock = lock
        try:
            self.check()                        # again, now that no other nexusbayes run can change it
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def __exit__(self, *exc_info) -> None:
        if self._lock is not None:
            self._lock.release()
            self._lock = None
        self._remove_made()

    def _remove_made(self) -> None:
        """Remove the parent folders this claim created, if still empty (nothing was written after all)."""
        for folder in self._made:
            if folder.is_dir() and not any(folder.iterdir()):
                folder.rmdir()
        self._made = []

    def check(self) -> None:
        """Refuse (raise) unless the folder may be written now; see the class's Raises."""
        out, shown = self.path, self.given
        if out.parent == out:
            raise OutputError(f"{shown} is the filesystem root; pass --out a new folder")
        if out.is_symlink():
            target = out.resolve()
            raise OutputError(f"{shown} is a symlink (to {target}); an output folder is replaced as a whole, which "
                              f"would replace the link, not the folder it points to: pass --out {target} directly")
        if out.exists() and not out.is_dir():
            raise OutputError(f"{shown} is a file, not a folder; pass --out a new folder (or one an earlier "
                              "nexusbayes run wrote)")
        if out.exists():
            self._check_contents()

    def _check_contents(self) -> None:
        """Refuse an existing folder holding an input, others' files or the cwd; or another kind, or an earlier one."""
        out, shown = self.path, self.given
        real = out.resolve()
        for path in self.inputs:
            if real in Path(path).resolve().parents:
                raise OutputExistsError(f"{shown} holds {path}, an input of this run; nothing in it is replaced "
                                        "(even with --overwrite): pass --out a folder of its own")
        foreign = foreign_files(out)
        if foreign:
            shown_files = ", ".join(str(p.relative_to(out)) for p in foreign[:5])
            more = f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
            legacy = (" (a run of an older nexusbayes, which kept no list of its files, looks like this: delete "
                      "it yourself if it is one)" if read_manifest(out) is None and (out / FIT_FILE).is_file() else "")
            raise OutputExistsError(f"{shown} holds files nexusbayes did not write ({shown_files}{more}); nothing "
                                    "in it is replaced (even with --overwrite): pass --out a new or empty folder"
                                    + legacy)
        cwd = Path.cwd().resolve()
        if cwd == real or real in cwd.parents:
            raise OutputError(f"{shown} is the current folder (or holds it), which a run replaces as a whole; "
                              f"pass --out a new folder inside it, e.g. --out {shown / 'run'}")
        manifest = read_manifest(out)
        if manifest is None:
            return                              # an empty folder
        if manifest["kind"] != self.kind:
            raise OutputExistsError(f"{shown} holds {_NOUN[manifest['kind']]} written by nexusbayes, not "
                                    f"{_NOUN[self.kind]}; nothing in it is replaced: pass --out another folder")
        if not self.overwrite:
            raise OutputExistsError(f"{shown} already holds {_WHAT[self.kind]}; pass --overwrite (overwrite=True) "
                                    "to replace it, or --out DIR to write elsewhere")

    def replace_with(self, fill: Callable[[Path], None]) -> Path:
        """Call ``fill(tmp)`` on a new folder beside this one, then make it this folder in one step.

        Signals are honoured before writing and before the swap (:func:`nexusbayes.interrupts.check`)
        and held back during it, so the folder is always the earlier one or the complete new one.
        Only what the earlier run's manifest lists is deleted.
        """
        if self._lock is None:
            raise RuntimeError("OutputFolder.replace_with needs the folder claimed: use `with OutputFolder(...)`")
        interrupts.check()
        tmp = temp_dir_beside(self.path)
        keep = False
        try:
            fill(tmp)
            write_manifest(tmp, self.kind)
            interrupts.check()
            try:
                self.check()
            except OutputExistsError as exc:   # files appeared meanwhile: keep the new outputs, say where
                keep = True
                raise OutputExistsError(f"{exc}; the new outputs are kept in {tmp}") from None
            with interrupts.deferred():
                _swap_in(tmp, self.path)
                interrupts.written(self.given)
        finally:
            if tmp.exists() and not keep:
                shutil.rmtree(tmp)
        return self.path


def _swap_in(new: Path, out_dir: Path) -> None:
    """Rename ``new`` to ``out_dir``, moving an earlier ``out_dir`` aside first and deleting what it owned last.

    If anything (a full disk) interrupts between the two renames, the earlier folder is moved
    back, so ``out_dir`` is always either the old folder or the complete new one.
    """
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f".{out_dir.name}.old-{os.getpid()}")
        os.replace(out_dir, old)
    try:
        os.replace(new, out_dir)
    except BaseException:
        if old is not None and not out_dir.exists():
            os.replace(old, out_dir)
        raise
    if old is not None:
        _remove_owned(old)
