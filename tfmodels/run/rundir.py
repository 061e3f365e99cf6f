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
- A resumed run has the settings that define the run (``config.DEFINING``) and,
  with ``--model_file``, a file of the same content as the run's own copy of it
  (``names.MODEL_FILE``, taken when the run started); else it is refused in one
  line naming each setting that differs (old -> new; the model file by the SHA-256
  of its content and of the copy) and the ways out. The other settings (the epochs
  to reach, ...) a session may change; the manifest and the history record each
  session's, with the epochs it trained. A finished run asked for as many epochs
  as it has trains nothing and says so; asked for fewer, it is refused (exit 4).
- ``--model_file`` is read once per session (``read_model_file``): the model is
  built from those bytes (``building_from``) and the run's copy is written from
  (or compared with) the same bytes, so an edit meanwhile cannot split the two.
- The session that trains an epoch on removes the evaluations of the weights it
  replaces (``names.evaluations``: what evaluate.py wrote), and says so.
- A failed write (disk full, permissions) stops the run with RunDirError
  and leaves the last state the manifest records intact; Ctrl-C or SIGTERM
  becomes one ``Interrupted`` line saying which epoch to resume.
"""

import contextlib
import dataclasses
import datetime
import errno
import hashlib
import os
import pathlib
import signal
import tempfile
from typing import NamedTuple

from absl import logging

from numpy_ref.network.serialization import save_npz
from tfmodels.errors import ConfigError, Interrupted, RunDirError, WeightsFileError
from tfmodels.files import atomic_write, sha256
from tfmodels.run import artifacts, backends, lock, manifest, names
from tfmodels.run.config import SESSION, RunConfig, changed_settings, state_differences
from tfmodels.run.keras_model import save_keras_model


def check_path(model_dir):
    """RunDirError naming ``model_dir`` and the system's reason when the path cannot be
    looked up at all (a name too long, a loop of links, a folder it cannot search); a
    path that does not exist yet, or runs into a file, passes (``check_writable`` says
    more)."""
    try:
        os.stat(model_dir)
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as e:
        raise RunDirError(f"--model_dir={model_dir} cannot be used "
                          f"({e.strerror or e})") from None


def check_writable(model_dir):
    """Fails early, creating nothing, when ``model_dir`` cannot hold the run's files."""
    check_path(model_dir)
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
    flags, epochs, sessions = artifacts.read_history(path)
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
    if sessions is not None and (manifest.sessions_through(sessions, epoch)
                                 != manifest.sessions(manifest_)):
        raise RunDirError(f"{path}: its \"sessions\" (which settings trained which epochs) "
                          f"are not those of {names.MANIFEST}: edited since the run wrote "
                          f"them?; {manifest.RETRAIN}")
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


# The system's reasons a write in the run directory fails, as TensorFlow's errors (of
# its TensorBoard writer) end their lines with them: "<path>; File name too long".
_WRITE_ERRORS = tuple(os.strerror(code) for code in (
    errno.ENOSPC, errno.EDQUOT, errno.ENAMETOOLONG, errno.EROFS, errno.EACCES, errno.EIO))


def _write_failure(e, model_dir):
    """Why ``e`` is a failed write, in words (an OSError, or TensorFlow's multi-line
    report of a full disk, or of another of ``_WRITE_ERRORS`` on a file it names in
    ``model_dir``, from its TensorBoard writer); else None."""
    if isinstance(e, OSError):
        return e.strerror or str(e)
    disk_full, text = os.strerror(errno.ENOSPC), str(e)
    if disk_full in text:
        return disk_full
    if str(model_dir) not in text:
        return None
    return next((reason for reason in _WRITE_ERRORS if f"; {reason}" in text), None)


def ways_out(config, path):
    """What a user can do when ``path`` holds a run ``config`` may not continue, in words."""
    out = (f"pass --noresume to start anew in {path} (it removes that run's files), or "
           "another --model_dir")
    default = pathlib.Path(dataclasses.replace(config, model_dir=None).model_dir)
    if default.resolve() != pathlib.Path(path).resolve():
        out += f" (without --model_dir, these settings train in {default})"
    return out


class ModelFileSnapshot(NamedTuple):
    """``--model_file`` as a session read it, once: the content its model is built from
    (``building_from``) and the run's copy holds or is compared with, so that an edit of
    the user's file meanwhile cannot make a run train one model and record another."""

    path: str  # the user's --model_file
    content: bytes
    sha256: str


def read_model_file(path):
    """The ``ModelFileSnapshot`` of the file at ``path``; WeightsFileError naming the flag
    if it cannot be read."""
    try:
        content = pathlib.Path(path).read_bytes()
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        raise WeightsFileError(f"--model_file={path}: no such file") from None
    except OSError as e:
        raise WeightsFileError(f"--model_file={path}: cannot be read "
                               f"({e.strerror or e})") from None
    return ModelFileSnapshot(str(path), content, hashlib.sha256(content).hexdigest())


@contextlib.contextmanager
def building_from(config, snapshot):
    """``config`` to build the run's model with: with a ``snapshot`` of --model_file, one
    whose ``model_file`` is a private file of the snapshot's content (removed after the
    block, before the run directory is locked); an error naming that file names the
    user's instead, whose content it is."""
    if snapshot is None:
        yield config
        return
    with tempfile.TemporaryDirectory(prefix="tfmodels-model-file-") as folder:
        private = pathlib.Path(folder) / (pathlib.Path(snapshot.path).name or "model.keras")
        private.write_bytes(snapshot.content)
        try:
            yield dataclasses.replace(config, model_file=str(private))
        except (ConfigError, WeightsFileError) as e:
            raise type(e)(str(e).replace(str(private), snapshot.path)) from None


def _write_model_file_copy(snapshot, model_dir):
    """Writes ``snapshot``'s content as the run's copy (atomically), reads the copy back
    and returns its record for the manifest ({"file": names.MODEL_FILE, "sha256": ...})."""
    copy = pathlib.Path(model_dir) / names.MODEL_FILE
    with atomic_write(copy) as f:
        f.write(snapshot.content)
    digest = sha256(copy)
    if digest != snapshot.sha256:
        raise RunDirError(f"{copy}: reads back with another SHA-256 than the --model_file "
                          f"content written to it ({digest[:12]} vs {snapshot.sha256[:12]})")
    return {"file": names.MODEL_FILE, "sha256": digest}


def own_model_file(model_dir, saved, config):
    """``config`` (a finished or saved run's) with ``model_file`` pointing at the run's own
    copy of its model file, checked against the manifest's record: the run then builds
    alike however the user's file was moved or edited since. Without a copy (runs saved
    before copies were taken) ``config`` as it is; a missing copy falls back to the
    user's file if its content is the recorded one."""
    record = manifest.model_file_record(saved)
    if config.model_file is None or record is None:
        return config
    copy = pathlib.Path(model_dir) / record["file"]
    for candidate in (copy, pathlib.Path(config.model_file)):
        if candidate.is_file() and sha256(candidate) == record["sha256"]:
            return dataclasses.replace(config, model_file=str(candidate))
    state = "changed since" if copy.is_file() else "missing"
    raise RunDirError(f"{copy}, the run's copy of its --model_file, is {state}, and "
                      f"{config.model_file} no longer holds that content either (SHA-256 "
                      f"{record['sha256'][:12]}...): the run's model cannot be rebuilt; "
                      f"{manifest.RETRAIN}")


def _epochs(n):
    return f"{n} epoch{'s' * (n != 1)}"


class RunDir:
    """The run directory of one training session, held under its lock."""

    def __init__(self, config, path, model_file=None):
        self.config, self.path = config, pathlib.Path(path)
        # --model_file as this session read it (``read_model_file``), once.
        self.model_file = (model_file if model_file is not None or config.model_file is None
                           else read_model_file(config.model_file))
        self.manifest = None
        # This session, as the manifest records it: its start, and whether it has saved
        # an epoch yet (its first starts a new entry in the manifest's sessions).
        self.started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
        self.saved_an_epoch = False

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
        self._check_same_run(saved)
        history = checked_history(self.path, saved)
        self._check_epochs(saved)
        arrays = (checked_checkpoint(self.path, saved, backend.state_arrays())
                  if saved["epoch"] else None)
        remove_temporaries(self.path)
        self.manifest = saved
        self._keep_model_file_copy()
        if arrays is not None:
            backend.restore(arrays)
        self._log_resumed(saved)
        if not saved["finished"]:  # left by a session stopped before it removed them
            self._remove_evaluations(f"they evaluated older weights than the run's "
                                     f"{_epochs(saved['epoch'])}")
        return saved["epoch"], history

    def _check_same_run(self, saved):
        """RunDirError naming each setting that defines the run and differs from the saved
        run's (old -> new; --model_file: its content), and the ways out."""
        problems = changed_settings(saved["flags"], self.config.to_dict())
        record, ways = manifest.model_file_record(saved), ways_out(self.config, self.path)
        if self.config.model_file is not None and saved["flags"].get("model_file"):
            if record is None:
                raise RunDirError(
                    f"--model_dir={self.path} holds a --model_file run saved without a copy "
                    "of its model file, so the content of --model_file cannot be compared "
                    f"with the one it started from; {ways}")
            now, copy = self.model_file.sha256, self.path / record["file"]
            if now != record["sha256"]:
                problems.append(
                    f"--model_file={self.config.model_file} is not the model file the run "
                    f"started from: its content (SHA-256 {now[:12]}...) differs from the "
                    f"run's copy {copy} (SHA-256 {record['sha256'][:12]}...)")
                if copy.is_file() and sha256(copy) == record["sha256"]:
                    ways = (f"pass --model_file={copy} to go on with the model the run "
                            f"started from, or {ways}")
        if problems:
            raise RunDirError(f"--model_dir={self.path} holds a run with other settings: "
                              f"{'; '.join(problems)}; {ways}")

    def _check_epochs(self, saved):
        """RunDirError if the run has more epochs than --epochs asks for."""
        done, asked = saved["epoch"], self.config.epochs
        if done > asked:
            raise RunDirError(
                f"--model_dir={self.path}: the run there already has {done} epochs, more than "
                f"--epochs={asked} asks for; ask for --epochs={done} to keep it as it is (or "
                f"more to train on), or {ways_out(self.config, self.path)}")

    def _keep_model_file_copy(self):
        """Restores the run's copy of --model_file from this session's reading of the
        user's file (whose content ``_check_same_run`` found to be the recorded one) if the
        copy is missing or changed."""
        record = manifest.model_file_record(self.manifest)
        if record is None:
            return
        copy = self.path / record["file"]
        if not (copy.is_file() and sha256(copy) == record["sha256"]):
            _write_model_file_copy(self.model_file, self.path)
            logging.info("Restored %s from --model_file=%s", copy, self.config.model_file)

    def _remove_evaluations(self, why):
        """Removes what evaluate.py wrote (``names.evaluations``), stale now, saying ``why``."""
        removed = [name for name in names.evaluations(backends.BACKENDS)
                   if (self.path / name).is_file()]
        try:
            for name in removed:
                (self.path / name).unlink(missing_ok=True)
        except OSError as e:
            logging.warning("Could not remove %s, stale now (%s), in %s: %s",
                            ", ".join(removed), why, self.path, e.strerror or e)
            return
        if removed:
            logging.info("Removed %s from %s: %s; run evaluate.py again once the run is "
                         "finished", ", ".join(removed), self.path, why)

    def _log_resumed(self, saved):
        """Where the resumed run stands, what this session will do, and the settings it
        changes (those a session may: the epochs to reach, ...)."""
        done, asked = saved["epoch"], self.config.epochs
        changes = changed_settings(saved["flags"], self.config.to_dict(), SESSION)
        changed = f"; changed since the last session: {', '.join(changes)}" if changes else ""
        if done < asked:
            if done:
                logging.info("Resuming in %s after epoch %d (of %d)%s", self.path, done,
                             asked, changed)
            else:
                logging.info("Starting in %s, where the run had completed no epoch yet%s",
                             self.path, changed)
        elif saved["finished"]:
            logging.info("The run in %s already has %s: nothing to train. Ask for --epochs=N "
                         "above %d to train on, or pass --noresume to start anew", self.path,
                         _epochs(done), done)
        else:
            logging.info("The run in %s has all %s; saving its final weights", self.path,
                         _epochs(done))

    def _start_new(self):
        """The manifest of a run with no epoch yet (and, with --model_file, the run's copy
        of it), written first so that even a run stopped in its first epoch leaves a
        directory it can resume in."""
        record = (_write_model_file_copy(self.model_file, self.path)
                  if self.model_file is not None else None)
        self._write_manifest(manifest.new(self.config.to_dict(), record))
        logging.info("New run in %s", self.path)
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
        write becomes a RunDirError and leaves the previous epoch's state be. The session's
        first epoch then removes the evaluations of the weights it replaces."""
        epoch, arrays, flags = history[-1]["epoch"], backend.state_arrays(), self.config.to_dict()
        first, final = not self.saved_an_epoch, self.manifest["final"]
        sessions = manifest.with_epoch(self.manifest, flags, epoch, self.started, first)
        try:
            artifacts.write_history(self.path, flags, history, sessions)
            checkpoint = artifacts.save_checkpoint(self.path, epoch, arrays)
            self._write_manifest(manifest.after_epoch(
                self.manifest, flags, history, checkpoint, self.path, arrays, sessions))
            self.saved_an_epoch = True
        except OSError as e:
            raise RunDirError(f"could not save epoch {epoch} in --model_dir={self.path} "
                              f"({e.strerror or e}); {self.kept()}") from None
        if first:
            evaluated = f"the final weights of epoch {final['epoch']}" if final else "other weights"
            self._remove_evaluations(f"they evaluated {evaluated}, and the run has trained on "
                                     f"to epoch {epoch}")
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
def opened(config, model_dir, model_file=None):
    """A RunDir for ``config`` at ``model_dir``, created if needed and locked
    for the block; failed writes in the block become RunDirError and
    interruptions one ``Interrupted`` line naming the epoch. ``model_file``: the
    ``ModelFileSnapshot`` the run's model was built from (None: --model_file is read
    when the RunDir is made)."""
    model_dir = pathlib.Path(model_dir)
    check_writable(model_dir)
    created = not model_dir.exists()
    try:
        model_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"--model_dir={model_dir} cannot be created "
                          f"({e.strerror or e})") from None
    try:
        with _locked(config, model_dir, model_file) as run_dir:
            yield run_dir
    finally:
        if created:  # a run refused or stopped before it began leaves no folder behind
            with contextlib.suppress(OSError):
                model_dir.rmdir()


@contextlib.contextmanager
def _locked(config, model_dir, model_file):
    """The body of ``opened``, under the lock; a folder without a manifest (a
    run that never began) keeps no lock file either."""
    with lock.held(model_dir, keep_file=(model_dir / names.MANIFEST).exists):
        run_dir = RunDir(config, model_dir, model_file)
        try:
            yield run_dir
        except (Interrupted, KeyboardInterrupt) as e:
            raise Interrupted(getattr(e, "signum", signal.SIGINT), run_dir.interrupted()) from None
        except Exception as e:  # pylint: disable=broad-except
            reason = None if isinstance(e, RunDirError) else _write_failure(e, model_dir)
            if reason is None:
                raise
            raise RunDirError(f"could not write in --model_dir={model_dir} ({reason}); "
                              f"{run_dir.kept()}") from None
