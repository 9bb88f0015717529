"""A seeded, resumable, DDP-aware sampler over an endless stream of epochs."""

from __future__ import annotations

from typing import Dict, Iterator, Optional

import numpy as np
import torch


class SeededSampler(torch.utils.data.Sampler):
    """Endless seeded sampling whose position can be saved and restored exactly.

    The **global stream** is the concatenation of one permutation of ``range(n)`` per epoch,
    permutation ``e`` seeded by ``(seed, e)``; its element at position ``p`` is yielded as the
    index ``e·n + perm_e[p mod n]`` (``e = p // n``), which datasets of :mod:`fastinpaint.data`
    read as file ``perm_e[...]`` with the augmentation of epoch ``e`` (fresh crops and masks each
    epoch). Process ``rank`` of ``num_replicas`` takes the stream positions ``rank, rank + R,
    rank + 2R, …`` starting at :attr:`position` — like :class:`~torch.utils.data.DistributedSampler`,
    but with no padding, so ``R`` processes with batch ``b`` each see exactly the samples that
    one process with batch ``R·b`` sees, batch for batch.

    Args:
        data_source: the dataset (or its length).
        seed: seed of the permutations.
        shuffle: False gives ``0, 1, …, n-1`` every epoch.
        num_replicas: number of processes (default: the ``torch.distributed`` world size, or 1).
        rank: this process's rank (default: from ``torch.distributed``, or 0).
        position: global stream position to start from (samples already consumed by all ranks).

    Example:
        >>> import itertools, torch
        >>> from fastinpaint.masks import IrregularMaskDataset
        >>> from fastinpaint.training.sampler import SeededSampler
        >>> dataset = IrregularMaskDataset(32, length=10)   # takes any index, as the sampler needs
        >>> s = SeededSampler(dataset, seed=0)
        >>> first = list(itertools.islice(s, 16))
        >>> s.set_position(12)      # resume after 12 samples (e.g. 3 steps of global batch 4)
        >>> list(itertools.islice(s, 4)) == first[12:16]
        True
        >>> loader = torch.utils.data.DataLoader(dataset, batch_size=4, sampler=s)
        >>> next(iter(loader)).shape
        torch.Size([4, 1, 32, 32])
    """

    def __init__(self, data_source, seed: int = 0, shuffle: bool = True, num_replicas: Optional[int] = None,
                 rank: Optional[int] = None, position: int = 0) -> None:
        n = data_source if isinstance(data_source, int) else len(data_source)
        if n < 1:
            raise ValueError("SeededSampler: the dataset is empty")
        if num_replicas is None or rank is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            num_replicas = (dist.get_world_size() if ready else 1) if num_replicas is None else num_replicas
            rank = (dist.get_rank() if ready else 0) if rank is None else rank
        if not 0 <= rank < num_replicas:
            raise ValueError(f"SeededSampler: rank {rank} out of range for {num_replicas} replicas")
        self.n = int(n)
        self.seed = int(seed)
        self.shuffle = bool(shuffle)
        self.num_replicas = int(num_replicas)
        self.rank = int(rank)
        self.position = int(position)

    def permutation(self, epoch: int) -> np.ndarray:
        """The order of epoch ``epoch``."""
        if not self.shuffle:
            return np.arange(self.n)
        return np.random.default_rng([self.seed & 0xFFFFFFFF, int(epoch)]).permutation(self.n)

    def __iter__(self) -> Iterator[int]:
        pos = self.position + self.rank
        epoch, perm = -1, None
        while True:
            e, off = divmod(pos, self.n)
            if e != epoch:
                epoch, perm = e, self.permutation(e)
            yield int(e * self.n + perm[off])
            pos += self.num_replicas

    def set_position(self, position: int) -> None:
        """Starts the next iteration at global stream position ``position``."""
        self.position = int(position)

    def set_epoch(self, epoch: int) -> None:
        """:class:`~torch.utils.data.DistributedSampler` compatibility: start at epoch ``epoch``."""
        self.position = int(epoch) * self.n

    def state_dict(self) -> Dict[str, int]:
        return {"seed": self.seed, "n": self.n, "shuffle": int(self.shuffle), "position": self.position}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        if int(state["n"]) != self.n or int(state["seed"]) != self.seed:
            raise ValueError(f"sampler state is for n={state['n']}, seed={state['seed']}; this sampler has "
                             f"n={self.n}, seed={self.seed} (the data or the seed changed)")
        self.position = int(state["position"])
