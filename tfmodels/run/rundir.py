"""A run directory (--model_dir): locked, checked against its manifest, own names only.

``experiment.run`` trains inside ``opened``::

    with rundir.opened(config, model_dir) as run_dir:
        completed, history = run_dir.start(backend)   # new, anew, or resumed
        ...                                           # each epoch:
        run_dir.save_epoch(history, backend)          # history, checkpoint, manifest
        run_dir.save_final(backend)                   # weights.npz, model.keras, manifest

and ``evaluate.py`` reads inside ``lock.held``. Guarantees:

- One process at a time (``tfmodels.run.lock``); a second one is refused.
- Only the names of ``tfmodels.run.names`` are created, replaced or removed,
  and only the project's own temporary files are cleaned up, under the lock.
- ``manifest.json`` (``tfmodels.run.manifest``), written last, says which
  epoch the history, checkpoint and final weights belong to; resuming checks
  every file against it and refuses (exit 4, one line) what does not match,
  so a resumed run never shortens or rewrites completed epochs' history.
- A failed write (disk full, permissions) stops the run with RunDirError
  and leaves the last state the manifest records intact; Ctrl-C or SIGTERM
  becomes one ``Interrupted`` line saying which epoch to resume.
"""

import contextlib
import errno
import os
import pathlib
import signal

from absl import logging

from numpy_ref.network.serialization import save_npz
from tfmodels.errors import ConfigError, Interrupted, RunDirError
from tfmodels.files import atomic_write, sha256
from tfmodels.run import artifacts, backends, lock, manifest, names
from tfmodels.run.config import RunConfig, state_differences
from tfmodels.run.keras_model import save_keras_model


def check_writable(model_dir):
    """Fails early, creating nothing, when ``model_dir`` cannot hold the run's files."""
    model_dir = pathlib.Path(model_dir)
    existing = model_dir
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise RunDirError(f"--model_dir={model_dir} cannot be created: {existing} is a file")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise RunDirError(f"--model_dir={model_dir} is not writable ({existing})")


def check_kinds(model_dir):
    """RunDirError if one of the project's names is taken by the wrong kind of
    entry (a file called ``checkpoints``, a folder called ``history.json``)."""
    model_dir = pathlib.Path(model_dir)
    for name in names.FOLDERS:
        path = model_dir / name
        if path.exists() and not path.is_dir():
            raise RunDirError(f"{path} is not a folder, but the run keeps its {name} in a "
                              "folder of that name; move it away or pass another --model_dir")
    for path in sorted(model_dir.iterdir()) if model_dir.is_dir() else ():
        if _is_own_file(None, path.name) and not path.is_file():
            raise RunDirError(f"{path} is not a file, but the run writes a file of that "
                              "name; move it away or pass another --model_dir")


def _is_own_file(folder, name):
    return names.is_own_file(folder, name, backends.BACKENDS)


def _is_own_temporary(folder, name):
    return names.is_own_temporary(folder, name, backends.BACKENDS)


def _entries(model_dir, own):
    """Paths in the run directory and its FOLDERS that ``own(folder, name)`` accepts."""
    model_dir = pathlib.Path(model_dir)
    found = []
    for folder in (None, *names.FOLDERS):
        where = model_dir if folder is None else model_dir / folder
        if not where.is_dir():
            continue
        found += sorted(p for p in where.iterdir() if own(folder, p.name) and not p.is_dir())
    return found


def own_files(model_dir):
    """The project's files in ``model_dir`` (the lock and temporaries aside)."""
    return _entries(model_dir, _is_own_file)


def remove_temporaries(model_dir):
    """Deletes the project's own temporary files (of writes a killed process never
    renamed); call it only under the lock, when no write of ours is in flight."""
    removed = _entries(model_dir, _is_own_temporary)
    for path in removed:
        path.unlink(missing_ok=True)
    if removed:
        logging.info("Removed %d temporary file(s) left by an interrupted write in %s",
                     len(removed), model_dir)
    return removed


def remove_own_files(model_dir):
    """Deletes the project's files (and temporaries) from ``model_dir``, then its
    folders if that left them empty; logs what it removed. Nothing else is touched."""
    model_dir = pathlib.Path(model_dir)
    removed = own_files(model_dir) + remove_temporaries(model_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    for folder in names.FOLDERS:
        with contextlib.suppress(OSError):  # not there, or holding files of the user's
            (model_dir / folder).rmdir()
    if removed:
        logging.info("--noresume: removed the previous run's files from %s: %s", model_dir,
                     ", ".join(p.relative_to(model_dir).as_posix() for p in removed))
    return removed


def config_of(manifest_, model_dir):
    """The RunConfig a manifest records; RunDirError naming the file if invalid."""
    try:
        return RunConfig.from_dict(manifest_["flags"]).validate()
    except (ConfigError, TypeError, ValueError) as e:
        raise RunDirError(f"{pathlib.Path(model_dir) / names.MANIFEST}: no valid run "
                          f"settings ({e}); {manifest.RETRAIN}") from None


def checked_history(model_dir, manifest_):
    """The completed epochs' history entries, after checking history.json
    against the manifest; RunDirError naming what does not match."""
    path = pathlib.Path(model_dir) / names.HISTORY_JSON
    epoch = manifest_["epoch"]
    if not path.exists():
        if epoch == 0:
            return []
        raise RunDirError(f"{path} is missing, but {names.MANIFEST} records {epoch} completed "
                          f"epoch(s); {manifest.RETRAIN}")
    flags, epochs = artifacts.read_history(path)
    # One epoch more than recorded: a run stopped between writing the history
    # and the manifest. That epoch is not complete; it is trained again.
    if not epoch <= len(epochs) <= epoch + 1:
        raise RunDirError(f"{path} lists {len(epochs)} epoch(s), but {names.MANIFEST} records "
                          f"{epoch} completed; {manifest.RETRAIN}")
    differences = state_differences(flags, manifest_["flags"], f"in {names.HISTORY_JSON}",
                                    f"in {names.MANIFEST}")
    if differences:
        raise RunDirError(f"{path} does not match {names.MANIFEST} ({'; '.join(differences)}): "
                          f"edited since the run wrote it?; {manifest.RETRAIN}")
    if manifest.history_digest(epochs[:epoch]) != manifest_["history"]:
        raise RunDirError(f"{path}: epochs 1-{epoch} are not those the run recorded in "
                          f"{names.MANIFEST}: edited or replaced since; {manifest.RETRAIN}")
    return epochs[:epoch]


def checked_checkpoint(model_dir, manifest_, template):
    """The arrays of the checkpoint the manifest records, checked against the
    manifest's list and against ``template`` (the backend's own state arrays)."""
    epoch, record = manifest_["epoch"], manifest_["checkpoint"]
    if record["file"] != f"{names.CHECKPOINTS}/{names.checkpoint(epoch)}":
        raise RunDirError(f"{pathlib.Path(model_dir) / names.MANIFEST}: names "
                          f"{record['file']!r} as epoch {epoch}'s checkpoint; "
                          f"{manifest.RETRAIN}")
    path = pathlib.Path(model_dir) / record["file"]
    if not path.is_file():
        raise RunDirError(f"{path} is missing, but {names.MANIFEST} records it as the state "
                          f"after epoch {epoch}: the history has no matching checkpoint; "
                          f"{manifest.RETRAIN}")
    saved_epoch, arrays = artifacts.read_checkpoint(path)
    if saved_epoch != epoch:
        raise RunDirError(f"{path} holds epoch {saved_epoch}, not {epoch}; {manifest.RETRAIN}")
    manifest.check_arrays(path, arrays, record["arrays"], names.MANIFEST)
    manifest.check_arrays(path, arrays, manifest.array_record(template),
                          "the model and optimizer of these settings", exact=False)
    manifest.check_sha256(path, record["sha256"], "checkpoint")
    return arrays


def _write_failure(e):
    """Why ``e`` is a failed write, in words (an OSError, or TensorFlow's
    multi-line report of a full disk, from its TensorBoard writer); else None."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    disk_full = os.strerror(errno.ENOSPC)
    return disk_full if disk_full in str(e) else None


class RunDir:
    """The run directory of one training session, held under its lock."""

    def __init__(self, config, path):
        self.config, self.path = config, pathlib.Path(path)
        self.manifest = None

    @property
    def completed(self):
        return self.manifest["epoch"] if self.manifest else 0

    def start(self, backend):
        """(completed epochs, their history): a new run, a run started anew
        (--noresume), or the saved run, checked and restored into ``backend``."""
        check_kinds(self.path)
        if not self.config.resume:
            remove_own_files(self.path)
            return self._start_new()
        saved = manifest.read(self.path)
        if saved is None:
            if own_files(self.path):
                raise RunDirError(
                    f"--model_dir={self.path} holds run files but no {names.MANIFEST} (a run of "
                    "an older version, or an interrupted --noresume): pass --noresume to "
                    "remove them and start anew, or another --model_dir")
            remove_temporaries(self.path)
            return self._start_new()
        problems = self.config.incompatibilities(saved["flags"])
        if problems:
            raise RunDirError(f"--model_dir={self.path} holds a run with other settings "
                              f"({'; '.join(problems)}); pass another --model_dir or --noresume")
        history = checked_history(self.path, saved)
        arrays = (checked_checkpoint(self.path, saved, backend.state_arrays())
                  if saved["epoch"] else None)
        remove_temporaries(self.path)
        self.manifest = saved
        if arrays is not None:
            backend.restore(arrays)
            logging.info("Resuming in %s after epoch %d (of %d)", self.path, saved["epoch"],
                         self.config.epochs)
        return saved["epoch"], history

    def _start_new(self):
        """The manifest of a run with no epoch yet, written first so that even a
        run stopped in its first epoch leaves a directory it can resume in."""
        self._write_manifest(manifest.new(self.config.to_dict()))
        return 0, []

    def _write_manifest(self, new):
        manifest.write(self.path, new)
        self.manifest = new

    def kept(self):
        """What of the run survives a failure now, in words."""
        return (f"the checkpoint of epoch {self.completed} is kept" if self.completed
                else "no epoch had been saved yet")

    def save_epoch(self, history, backend):
        """history.json/csv, curves.png, the checkpoint, then the manifest; a failed
        write becomes a RunDirError and leaves the previous epoch's state be."""
        epoch, arrays, flags = history[-1]["epoch"], backend.state_arrays(), self.config.to_dict()
        try:
            artifacts.write_history(self.path, flags, history)
            checkpoint = artifacts.save_checkpoint(self.path, epoch, arrays)
            self._write_manifest(manifest.after_epoch(self.manifest, flags, history,
                                                      checkpoint, self.path, arrays))
        except OSError as e:
            raise RunDirError(f"could not save epoch {epoch} in --model_dir={self.path} "
                              f"({e.strerror or e}); {self.kept()}") from None
        try:
            artifacts.prune_checkpoints(self.path, epoch)
        except OSError as e:  # the epoch is saved; old checkpoints only take space
            logging.warning("Could not remove old checkpoints in %s: %s", self.path, e)

    def _final_is_saved(self):
        """Whether the manifest's final files are there, unchanged, for its last epoch."""
        return self.manifest["finished"] and all(
            (self.path / name).is_file() and sha256(self.path / name) == digest
            for name, digest in self.manifest["final"]["files"].items())

    def save_final(self, backend):
        """weights.npz (numpy_ref) and model.keras (Keras) from the final weights,
        then the manifest that says the run finished; nothing when they are
        already saved for the last completed epoch."""
        if self._final_is_saved():
            return
        try:
            net = backend.numpy_net()
            with atomic_write(self.path / names.WEIGHTS) as f:
                save_npz(net, f)
            save_keras_model(backend.keras_model(), self.path / names.KERAS_MODEL)
            self._write_manifest(manifest.after_final(self.manifest, self.config.to_dict(),
                                                      self.path))
        except OSError as e:
            raise RunDirError(f"could not save the final weights in --model_dir={self.path} "
                              f"({e.strerror or e}); {self.kept()}: rerun the same command "
                              "to save them") from None

    def interrupted(self):
        """The one line for a run stopped by Ctrl-C or SIGTERM."""
        if self.completed >= self.config.epochs:
            return (f"interrupted after the last epoch ({self.completed}), before the final "
                    "weights were saved; rerun the same command to save them")
        rerun = ("rerun the same command to resume" if self.config.resume
                 else "rerun without --noresume to resume")
        return f"interrupted in epoch {self.completed + 1}; {rerun}"


@contextlib.contextmanager
def opened(config, model_dir):
    """A RunDir for ``config`` at ``model_dir``, created if needed and locked
    for the block; failed writes in the block become RunDirError and
    interruptions one ``Interrupted`` line naming the epoch."""
    model_dir = pathlib.Path(model_dir)
    check_writable(model_dir)
    created = not model_dir.exists()
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"--model_dir={model_dir} cannot be created "
                          f"({e.strerror or e})") from None
    try:
        with _locked(config, model_dir) as run_dir:
            yield run_dir
    finally:
        if created:  # a run refused or stopped before it began leaves no folder behind
            with contextlib.suppress(OSError):
                model_dir.rmdir()


@contextlib.contextmanager
def _locked(config, model_dir):
    """The body of ``opened``, under the lock; a folder without a manifest (a
    run that never began) keeps no lock file either."""
    with lock.held(model_dir, keep_file=(model_dir / names.MANIFEST).exists):
        run_dir = RunDir(config, model_dir)
        try:
            yield run_dir
        except (Interrupted, KeyboardInterrupt) as e:
            raise Interrupted(getattr(e, "signum", signal.SIGINT), run_dir.interrupted()) from None
        except Exception as e:  # pylint: disable=broad-except
            reason = None if isinstance(e, RunDirError) else _write_failure(e)
            if reason is None:
                raise
            raise RunDirError(f"could not write in --model_dir={model_dir} ({reason}); "
                              f"{run_dir.kept()}") from None
