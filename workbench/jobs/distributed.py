"""Training and sampling over several processes with ``torch.distributed`` (``torchrun``).

``torchrun --nproc-per-node N -m workbench train CONFIG --out RUN`` starts N copies of the
command line; each sees ``WORLD_SIZE``/``RANK``/``LOCAL_RANK`` in its environment, and
:func:`launched_by_torchrun` sends ``train`` and ``sample`` here. The backend is NCCL on GPUs
(rank r on ``cuda:LOCAL_RANK``) and Gloo on CPUs.

Training (:class:`DistributedTrainer`) computes exactly the step of the single-process
:class:`~workbench.core.train.Trainer` with the same global batch B and seed, split over the
ranks. Every rank holds the same generator and draws the *global* batch's randomness in the
order the Trainer does (the data indices, then t, then the noise z, all of size B), and keeps
its slice ``[r B/N, (r+1) B/N)``. Its loss is the mean over its slice, and DDP's all-reduce
averages the gradients, so

    (1/N) sum_r (N/B) sum_{i in slice r} grad l_i = (1/B) sum_i grad l_i,

the single-process gradient, up to the order of float summation. The logged loss is the
global mean (an all-reduce of the slice means). Randomness a loss draws inside its per-sample
term (the projections of sliced score matching) comes from a per-rank generator instead, so
for those losses the runs agree in distribution, not bit for bit; DSM, the default, draws none.
Nothing in the state depends on N (the generator is global), so a run resumes with any number
of processes, or with none.

Rank 0 alone writes ``config.toml``, ``metrics.csv``, ``checkpoint.pt`` and the snapshots, and
holds the run folder's lock (:mod:`workbench.io.lock`) for the whole job, so a second writer is
refused; the other ranks check, before joining, that the folder is not held by another job. Every
rank reads the run folder (it must be on a file system they all see, as it is on one machine). A
rank that dies breaks the others' collectives: Gloo reports the closed connection at once, NCCL and
any other silent hang end at the process group's timeout (``SDE_WORKBENCH_DIST_TIMEOUT`` seconds,
default 120), and torchrun's agent then stops the remaining workers. Each survivor ends with a
one-line "lost contact" error naming its rank; the last checkpoint stays and ``--resume`` goes on
from it.

Sampling (:func:`sample_distributed`) shards the particles: rank r draws n_r of the n
(n_r = n // N, the first n % N ranks one more) with its own seed (sample.seed + r). Either
rank 0 gathers every recorded row into one ordinary trajectory file, or each rank writes
``FILE.rank<r>.h5`` and rank 0 writes FILE as HDF5 virtual datasets that join the shards.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel

from workbench.config import ExperimentConfig, save_config
from workbench.core.train import Progress, Trainer, TrainResult, resolve_device
from workbench.errors import ConfigError, WorkbenchError
from workbench.io.checkpoints import save_checkpoint
from workbench.io.lock import RunLock, RunLockedError, describe_holder, read_holder
from workbench.io.runs import MetricsWriter, RunFolder, checkpoint_state, run_dataset
from workbench.jobs.train import make_run_folder, prepare_run

__all__ = [
    "DistEnv",
    "DistributedTrainer",
    "launched_by_torchrun",
    "process_group",
    "shard_sizes",
    "sample_distributed",
    "train_distributed_in_folder",
]

TIMEOUT_ENV = "SDE_WORKBENCH_DIST_TIMEOUT"


@dataclass(frozen=True)
class DistEnv:
    """Where this process stands in the job, from torchrun's environment variables."""

    rank: int
    world_size: int
    local_rank: int

    @classmethod
    def from_environ(cls, environ: dict[str, str] | None = None) -> DistEnv:
        env = os.environ if environ is None else environ
        try:
            rank, world = int(env["RANK"]), int(env["WORLD_SIZE"])
            local = int(env.get("LOCAL_RANK", rank))
        except (KeyError, ValueError) as exc:
            raise WorkbenchError(
                f"not started by torchrun: RANK/WORLD_SIZE are missing or bad ({exc})"
            ) from None
        return cls(rank, world, local)

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def launched_by_torchrun(environ: dict[str, str] | None = None) -> bool:
    """Whether this process is a worker of ``torchrun`` (it sets RANK and WORLD_SIZE)."""
    env = os.environ if environ is None else environ
    return "RANK" in env and "WORLD_SIZE" in env


def _timeout() -> timedelta:
    text = os.environ.get(TIMEOUT_ENV, "120")
    try:
        seconds = float(text)
    except ValueError:
        raise WorkbenchError(f"{TIMEOUT_ENV} must be a number of seconds, not {text!r}") from None
    return timedelta(seconds=max(1.0, seconds))


@contextlib.contextmanager
def process_group(device_name: str, env: DistEnv | None = None) -> Iterator[torch.device]:
    """Join the job's process group for the length of the block; yields this rank's device.

    ``device_name`` is ``train.device``: ``auto`` takes the GPU ``LOCAL_RANK`` where CUDA is
    present (NCCL), else the CPU (Gloo).
    """
    env = env or DistEnv.from_environ()
    device = resolve_device(device_name)
    if device.type == "cuda":
        device = torch.device("cuda", env.local_rank)
        torch.cuda.set_device(device)
    backend = "nccl" if device.type == "cuda" else "gloo"
    created = not dist.is_initialized()
    if created:
        dist.init_process_group(
            backend,
            rank=env.rank,
            world_size=env.world_size,
            timeout=_timeout(),
            device_id=device if device.type == "cuda" else None,
        )
    try:
        yield device
    finally:
        if created and dist.is_initialized():
            dist.destroy_process_group()


def _lost_contact(env: DistEnv, exc: BaseException) -> WorkbenchError:
    lines = str(exc).strip().splitlines()
    first = lines[0][:200] if lines else type(exc).__name__
    return WorkbenchError(
        f"rank {env.rank} of {env.world_size} lost contact with the other ranks ({first}); "
        "another rank probably died (see torchrun's report for which); the last checkpoint "
        "is kept and --resume continues from it"
    )


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
class _SliceLoss(nn.Module):
    """The loss on one rank's slice as a module, so DDP sees the forward that uses the weights
    (the losses call ``model.sigma_score``, which DDP's own forward would not cover)."""

    def __init__(self, model: nn.Module, loss_fn: Any) -> None:
        super().__init__()
        self.model = model
        self.loss_fn = loss_fn

    def forward(
        self, x0: Tensor, t: Tensor, noise: Tensor, generator: torch.Generator | None
    ) -> Tensor:
        return self.loss_fn.per_sample(self.model, x0, t, noise, generator).mean()


class DistributedTrainer(Trainer):
    """A :class:`Trainer` whose step is split over the ranks of the current process group.

    Build it inside :func:`process_group`. Its :meth:`train_step` returns the global mean loss
    and the norm of the averaged gradient, which are equal on every rank, so every rank takes
    the same decisions (diverged, cancelled) at the same step.
    """

    def __init__(
        self, config: ExperimentConfig, device: torch.device, env: DistEnv, dataset: Any = None
    ) -> None:
        super().__init__(config, device=device, dataset=dataset)
        self.env = env
        _check_split(config.train.batch_size, env.world_size)
        self.local_batch = config.train.batch_size // env.world_size
        self.ddp = DistributedDataParallel(
            _SliceLoss(self.model, self.loss_fn),
            device_ids=[device] if device.type == "cuda" else None,
        )
        self.aux_generator = torch.Generator(device=self.device)
        self.cancel_requested: Callable[[], bool] = lambda: False
        self.cancel_all = False

    def train_step(self) -> tuple[Tensor, Tensor]:
        tc = self.config.train
        B = tc.batch_size
        # The global batch's randomness, drawn in the order Trainer.train_step draws it.
        idx = torch.randint(self.data.shape[0], (B,), generator=self.generator, device=self.device)
        x0 = self.data[idx]
        t = self.loss_fn.sample_time(B, x0.device, x0.dtype, self.generator)
        noise = torch.randn(x0.shape, generator=self.generator, device=x0.device, dtype=x0.dtype)
        lo = self.env.rank * self.local_batch
        part = slice(lo, lo + self.local_batch)
        # Per-rank randomness inside the loss: a pure function of (seed, step, rank), so a
        # resumed run draws what an uninterrupted one would.
        self.aux_generator.manual_seed(
            (tc.seed * 1_000_003 + self.step) * 4099 + self.env.rank + 7919
        )
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=self.autocast):
            loss = self.ddp(x0[part], t[part], noise[part], self.aux_generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()  # DDP all-reduces (averages) the gradients here
        if tc.grad_clip > 0:
            grad_norm = nn.utils.clip_grad_norm_(self.trainable, tc.grad_clip, foreach=True)
        else:
            grads = [p.grad for p in self.trainable if p.grad is not None]
            grad_norm = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))
        # One all-reduce carries the loss and the cancel vote: a Ctrl-C seen by any rank stops
        # all of them after the same step.
        vote = torch.stack(
            [
                loss.detach().float(),
                torch.tensor(float(self.cancel_requested()), device=loss.device),
            ]
        )
        dist.all_reduce(vote)
        self.cancel_all = bool(vote[1] > 0)
        return vote[0] / self.env.world_size, grad_norm.detach()


def _prepare_folder(
    config: ExperimentConfig | None,
    folder: RunFolder,
    *,
    resume: bool,
    steps: int | None,
    device: str | None,
    world_size: int,
) -> tuple[ExperimentConfig, dict[str, Any] | None]:
    """The config to train (and the checkpoint to resume), checked against the folder as
    train_in_folder checks it (every rank checks, so a bad request fails everywhere at once
    instead of hanging the others)."""
    _, config, checkpoint = prepare_run(
        config, folder.path, resume=resume, steps=steps, device=device
    )
    _check_split(config.train.batch_size, world_size)
    return config, checkpoint


def _job_id() -> str:
    """This torchrun job, as every one of its ranks sees it (the rendezvous id and endpoint)."""
    env = os.environ
    return (
        f"{env.get('TORCHELASTIC_RUN_ID', 'none')}@{env.get('MASTER_ADDR', '?')}:"
        f"{env.get('MASTER_PORT', '?')}"
    )


def _check_not_held_by_another_job(folder: Path, job: str, patience_s: float = 2.0) -> None:
    """On a rank other than 0: refuse at once when another job holds the folder's lock.

    Probes the lock without taking it. When it is held, the holder it names must be this job's
    rank 0; rank 0 may have locked the file but not yet written its name over a dead holder's,
    so a stranger's name is read again for ``patience_s`` before it counts.
    """
    import fcntl
    import time

    path = folder / ".lock"
    deadline = time.monotonic() + patience_s
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return  # no lock file: nobody holds it
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            holder = read_holder(folder)
            if holder is not None and holder.get("job") == job:
                return
            if time.monotonic() > deadline:
                raise RunLockedError(
                    f"{folder} is in use by {describe_holder(holder)}; wait for it to finish "
                    "or stop it, or train into another --out"
                ) from None
            time.sleep(0.05)
            continue
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return
        finally:
            os.close(fd)


def _check_split(batch: int, world_size: int) -> None:
    if batch % world_size != 0:
        raise ConfigError(
            "train.batch_size",
            f"{batch} does not split evenly over {world_size} processes; use a multiple of "
            f"{world_size}",
        )


def train_distributed_in_folder(
    config: ExperimentConfig | None,
    out: str | os.PathLike[str],
    *,
    resume: bool = False,
    steps: int | None = None,
    device: str | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    env: DistEnv | None = None,
) -> TrainResult:
    """:func:`~workbench.jobs.train.train_in_folder` for one rank of a torchrun job.

    Every rank calls it; rank 0 alone writes the folder, and ``on_progress`` is called on rank 0
    only (with the global mean loss).
    """
    env = env or DistEnv.from_environ()
    folder = RunFolder(Path(out))
    if not resume and config is None:
        raise WorkbenchError("a new run needs a config")
    job = _job_id()
    checked = _prepare_folder(
        config, folder, resume=resume, steps=steps, device=device, world_size=env.world_size
    )
    lock = None
    if env.is_main:
        # rank 0 locks, then checks again under the lock, so two jobs cannot both find the
        # folder free; a refusal ends rank 0 at once, and torchrun then stops the others
        make_run_folder(folder.path, resume)
        lock = RunLock(folder.path, f"torchrun rank 0 of {env.world_size}", job=job).acquire()
    try:
        if env.is_main:
            checked = _prepare_folder(
                config,
                folder,
                resume=resume,
                steps=steps,
                device=device,
                world_size=env.world_size,
            )
        elif folder.path.is_dir():
            _check_not_held_by_another_job(folder.path, job)
        return _train_rank(*checked, folder, env, on_progress, cancel)
    finally:
        if lock is not None:
            lock.release()


def _train_rank(
    config: ExperimentConfig,
    checkpoint: dict[str, Any] | None,
    folder: RunFolder,
    env: DistEnv,
    on_progress: Callable[[Progress], None] | None,
    cancel: Callable[[], bool] | None,
) -> TrainResult:
    with process_group(config.train.device, env) as dev:
        try:
            dataset = (
                None if checkpoint is None else run_dataset(config, checkpoint, need_data=True)
            )
            trainer = DistributedTrainer(config, dev, env, dataset=dataset)
            if checkpoint is not None:
                trainer.load_state_dict(checkpoint)
            metrics = None
            if env.is_main:
                save_config(config, folder.config_path)
                metrics = MetricsWriter(folder.metrics_path, keep_until_step=trainer.step)
            if cancel is not None:
                trainer.cancel_requested = cancel

            def progress(p: Progress) -> None:
                if metrics is not None:
                    metrics.write(p)
                    if on_progress is not None:
                        on_progress(p)

            def save_now(t: Trainer) -> None:
                if env.is_main:
                    save_checkpoint(checkpoint_state(t, config), folder.checkpoint_path)

            from workbench.jobs.snapshots import prune_snapshots, snapshot_hook

            if env.is_main:
                prune_snapshots(folder.path, trainer.step)
            # every rank keeps the snapshot schedule (the same read-backs), rank 0 writes
            on_eval, eval_every = snapshot_hook(
                folder.path, config.train.snapshot_every, write=env.is_main
            )
            try:
                result = trainer.run(
                    on_progress=progress,
                    cancel=lambda: trainer.cancel_all,
                    on_checkpoint=save_now,
                    on_eval=on_eval,
                    eval_every=eval_every,
                )
            finally:
                if metrics is not None:
                    metrics.close()
            if result.status in ("done", "cancelled"):
                save_now(trainer)
            dist.barrier()  # no rank leaves (and tears the group down) before the checkpoint
        except (dist.DistError, RuntimeError) as exc:
            if (
                isinstance(exc, dist.DistError)
                or "gloo" in str(exc).lower()
                or ("nccl" in str(exc).lower())
            ):
                raise _lost_contact(env, exc) from None
            raise
    return result


def train_from_cli(
    config: ExperimentConfig,
    out: str,
    *,
    resume: bool,
    steps: int | None,
    device: str | None,
    prog: str = "sde-workbench",
) -> int:
    """``sde-workbench train`` on one rank: rank 0 shows the progress bar and the outcome."""
    import signal

    from workbench.terminal import TerminalProgress

    env = DistEnv.from_environ()
    bar = TerminalProgress("train") if env.is_main else None
    stop = {"asked": False, "at": 0.0}

    def on_sigint(signum: int, frame: object) -> None:
        import time

        now = time.monotonic()
        # Ctrl-C reaches a worker twice: from the terminal, and forwarded by torchrun's agent.
        # Only a second Ctrl-C well after the first means "abort now".
        if stop["asked"]:
            if now - stop["at"] > 2.0:
                raise KeyboardInterrupt
            return
        stop["asked"], stop["at"] = True, now
        if bar is not None:
            bar.close()
            print(f"{prog} train: stopping after this step on every rank", file=sys.stderr)

    def on_progress(p: Progress) -> None:
        if bar is not None:
            bar.update(p.step, p.total, p.steps_per_s, loss=p.loss, lr=p.lr)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        result = train_distributed_in_folder(
            config,
            out,
            resume=resume,
            steps=steps,
            device=device,
            on_progress=on_progress,
            cancel=lambda: bool(stop["asked"]),
            env=env,
        )
    finally:
        signal.signal(signal.SIGINT, previous)
        if bar is not None:
            bar.close()
    if result.status == "diverged":
        raise WorkbenchError(result.message)
    if env.is_main:
        print(f"{result.message} on {env.world_size} processes; run folder: {out}")
    return 130 if result.status == "cancelled" else 0


# ---------------------------------------------------------------------------------------------
# sampling
# ---------------------------------------------------------------------------------------------
def shard_sizes(n: int, world_size: int) -> list[int]:
    """n particles over the ranks: n // N each, the first n % N ranks one more."""
    base, extra = divmod(n, world_size)
    return [base + (1 if r < extra else 0) for r in range(world_size)]


def shard_path(out: str | os.PathLike[str], rank: int) -> Path:
    """``samples.h5`` -> ``samples.rank0.h5``: where rank r writes its shard."""
    out = Path(out)
    return out.with_name(f"{out.stem}.rank{rank}{out.suffix or '.h5'}")


def _all_ok(ok: bool, device: torch.device) -> bool:
    """Every rank's verdict, so one rank's failure ends all of them instead of hanging them."""
    flag = torch.tensor([0.0 if ok else 1.0], device=device)
    dist.all_reduce(flag)
    return bool(flag.item() == 0.0)


def sample_distributed(
    config: ExperimentConfig,
    model: nn.Module,
    out: str | os.PathLike[str],
    *,
    shards: bool = False,
    overwrite: bool = False,
    progress: Callable[[int, int], None] | None = None,
    dataset: Any = None,
    env: DistEnv | None = None,
) -> Any:
    """Sample ``sample.n`` particles over the ranks of a torchrun job into ``out``.

    Rank r samples its share with seed ``sample.seed + r`` into ``FILE.rank<r>.h5``. Then rank
    0 either gathers every shard into the single trajectory file ``out`` and deletes the shards
    (``shards=False``), or writes ``out`` as HDF5 virtual datasets over the shards, which stay
    (``shards=True``; ``out`` is then a small file that needs its shards beside it). Returns
    the :class:`~workbench.jobs.sample.SamplingResult` of ``out`` on rank 0, None elsewhere.
    """
    from workbench.jobs.sample import SamplingResult, sample_to_file

    env = env or DistEnv.from_environ()
    sc = config.sample
    if sc.n < env.world_size:
        raise ConfigError(
            "sample.n", f"{sc.n} particles cannot be shared by {env.world_size} processes"
        )
    out = Path(out)
    if out.exists() and not overwrite:
        raise WorkbenchError(f"{out} already exists; choose another name or use --force")
    sizes = shard_sizes(sc.n, env.world_size)
    mine = config.with_overrides({"sample.n": sizes[env.rank], "sample.seed": sc.seed + env.rank})
    path = shard_path(out, env.rank)
    with process_group(config.train.device, env) as dev:
        error: WorkbenchError | None = None
        try:
            result = sample_to_file(
                mine,
                model,
                path,
                device=dev,
                overwrite=True,
                progress=progress if env.is_main else None,
                dataset=dataset,
            )
        except WorkbenchError as exc:
            error = exc
        if not _all_ok(error is None, dev):
            raise error or WorkbenchError(
                f"rank {env.rank}: another rank failed to sample (see its message); the shards "
                "written so far are kept"
            )
        joined: SamplingResult | None = None
        if env.is_main:
            parts = [shard_path(out, r) for r in range(env.world_size)]
            try:
                if shards:
                    rows = join_shards_virtual(parts, out)
                else:
                    rows = gather_shards(parts, out, config)
                    for p in parts:
                        p.unlink(missing_ok=True)
            except WorkbenchError as exc:
                error = exc
            else:
                joined = SamplingResult(out, "done", result.nfe, result.seconds, rows)
        dist.barrier()
        if error is not None:
            raise error
    return joined


def _read_shards(parts: list[Path]) -> list[Any]:
    import h5py

    files = []
    try:
        for p in parts:
            files.append(h5py.File(p, "r", locking=False))
    except OSError as exc:
        for f in files:
            f.close()
        raise WorkbenchError(f"cannot read shard {p}: {exc}") from None
    return files


def _common_rows(files: list[Any]) -> bool:
    """Whether the shards recorded the same (step, t) rows, so x can be joined row by row (an
    adaptive ODE solver picks its own steps on every rank)."""
    import numpy as np

    t0, s0 = files[0]["trajectories/t"][()], files[0]["trajectories/step"][()]
    return all(
        np.array_equal(f["trajectories/t"][()], t0)
        and np.array_equal(f["trajectories/step"][()], s0)
        for f in files[1:]
    )


def gather_shards(parts: list[Path], out: Path, config: ExperimentConfig) -> int:
    """Copy the shards into one ordinary trajectory file ``out`` (particles in rank order);
    returns its number of rows."""
    import numpy as np

    from workbench.config import to_toml
    from workbench.core.data import Normalizer
    from workbench.io.trajectories import TrajectoryWriter

    files = _read_shards(parts)
    try:
        first = files[0]
        group = first["trajectories"]
        common = _common_rows(files)
        shape = tuple(int(s) for s in np.ravel(group.attrs["sample_shape"]))
        n = sum(int(f["samples"].shape[0]) for f in files)
        normalizer = Normalizer.from_attrs(
            {k: group.attrs[k] for k in ("shift", "scale", "mode") if k in group.attrs}
        )
        rows = 0
        with TrajectoryWriter(
            out,
            n_samples=n,
            sample_shape=shape,
            config_toml=to_toml(config),
            sampler=str(group.attrs["sampler"]),
            direction=str(group.attrs["direction"]),
            normalizer=normalizer,
            overwrite=True,
        ) as writer:
            if common:  # an adaptive solver's rows differ per rank: then only the samples
                for k in range(int(group["x"].shape[0])):
                    x = np.concatenate([f["trajectories/x"][k] for f in files], axis=0)
                    writer.append(int(group["step"][k]), float(group["t"][k]), x)
                    rows += 1
            samples = np.concatenate([f["samples"][()] for f in files], axis=0)
            nfe = max(int(f["trajectories"].attrs["nfe"]) for f in files)
            writer.close(samples=samples, nfe=nfe)
        return rows
    finally:
        for f in files:
            f.close()


def join_shards_virtual(parts: list[Path], out: Path) -> int:
    """Write ``out`` as a trajectory file whose ``/trajectories/x`` and ``/samples`` are HDF5
    virtual datasets over the shards (concatenated along the particle axis); t, step, the
    config and the attributes are copied from shard 0. Returns the number of rows."""
    import h5py
    import numpy as np

    from workbench.io.nexus import write_entry

    files = _read_shards(parts)
    try:
        first = files[0]
        common = _common_rows(files)
        n = sum(int(f["samples"].shape[0]) for f in files)
        dim = int(first["samples"].shape[1])
        rows = int(first["trajectories/x"].shape[0]) if common else 0
        tmp = out.with_name(f".{out.name}.tmp")
        with h5py.File(tmp, "w", libver=("earliest", "v110"), locking=False) as g:
            for k, v in first.attrs.items():
                g.attrs[k] = v
            g.attrs["complete"] = np.bool_(all(bool(f.attrs["complete"]) for f in files))
            g.attrs["shards"] = [p.name for p in parts]
            g.create_group("config").attrs["experiment"] = first["config"].attrs["experiment"]
            tg = g.create_group("trajectories")
            for k, v in first["trajectories"].attrs.items():
                tg.attrs[k] = v
            if "entry" in first:  # the root's default names the NeXus entry: make it here too
                write_entry(g, "trajectories", str(first.attrs.get("file_time", "")))
            tg.create_dataset("t", data=first["trajectories/t"][:rows])
            tg.create_dataset("step", data=first["trajectories/step"][:rows])
            x_layout = h5py.VirtualLayout(shape=(rows, n, dim), dtype=np.float32)
            s_layout = h5py.VirtualLayout(shape=(n, dim), dtype=np.float32)
            lo = 0
            for p, f in zip(parts, files, strict=True):
                m = int(f["samples"].shape[0])
                # the source named relative to out's folder, so the set can be moved together
                if rows:
                    src = h5py.VirtualSource(
                        p.name, "trajectories/x", shape=f["trajectories/x"].shape
                    )
                    x_layout[:, lo : lo + m, :] = src[:rows]
                s_layout[lo : lo + m, :] = h5py.VirtualSource(p.name, "samples", shape=(m, dim))
                lo += m
            tg.create_virtual_dataset("x", x_layout, fillvalue=np.nan)
            g.create_virtual_dataset("samples", s_layout, fillvalue=np.nan)
        os.replace(tmp, out)
        return rows
    finally:
        for f in files:
            f.close()


def sample_from_cli(
    source: str,
    config: ExperimentConfig,
    model: nn.Module,
    dataset: Any,
    out: str,
    *,
    shards: bool,
    overwrite: bool,
) -> int:
    """``sde-workbench sample`` on one rank of a torchrun job."""
    import time

    from workbench.terminal import TerminalProgress

    env = DistEnv.from_environ()
    bar = TerminalProgress("sample") if env.is_main else None
    started = time.perf_counter()

    def progress(done: int, total: int) -> None:
        if bar is not None:
            elapsed = time.perf_counter() - started
            bar.update(done, total, done / elapsed if elapsed > 0 else 0.0)

    try:
        result = sample_distributed(
            config,
            model,
            out,
            shards=shards,
            overwrite=overwrite,
            progress=progress,
            dataset=dataset,
            env=env,
        )
    finally:
        if bar is not None:
            bar.close()
    if result is not None:
        how = "virtual datasets over one shard per rank" if shards else "gathered on rank 0"
        print(
            f"wrote {result.path}: {config.sample.n} samples on {env.world_size} processes "
            f"({how}), {result.rows} rows, {result.seconds:.2f} s"
        )
    return 0
