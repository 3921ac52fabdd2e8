"""The member axis: stacking, slicing, vmapping and sharding a group's members.

The state of every member of a group carries a leading member axis; the
programs `jax.vmap` over it (`over_members`), and with several devices the
axis is sharded across them (`member_mesh`, `place`), padded to a multiple of
the device count (`padded_slots`).
"""

from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

PyTree = Any


def stack(trees: Sequence[PyTree]) -> PyTree:
  """One tree whose leaves stack the trees' leaves on a new leading member axis."""
  return jax.tree.map(lambda *xs: jnp.stack(xs), *trees)


def member(tree: PyTree, i: int) -> PyTree:
  """Member i of a member-stacked tree."""
  return jax.tree.map(lambda x: x[i], tree)


def over_members(fn: Callable, batched: bool, in_axes) -> Callable:
  """`fn` vmapped over the leading member axis, or squeezed for one member."""
  if batched:
    return jax.vmap(fn, in_axes=in_axes)

  def single(*args):
    args = [a if ax is None else jax.tree.map(lambda x: x[0], a)
            for a, ax in zip(args, in_axes)]
    return jax.tree.map(lambda x: x[None], fn(*args))

  return single


def member_mesh(num_members: int, devices) -> Optional[jax.sharding.Mesh]:
  """The devices as a mesh of one 'members' axis; None for one member or one device."""
  if num_members < 2 or len(devices) < 2:
    return None
  return jax.sharding.Mesh(np.asarray(devices), ('members',))


def place(tree, mesh, member_axis: bool):
  """`tree` on the devices: sharded over its leading member axis, or replicated."""
  if mesh is None:
    return jax.device_put(tree)
  spec = jax.sharding.PartitionSpec('members') if member_axis else jax.sharding.PartitionSpec()
  return jax.device_put(tree, jax.sharding.NamedSharding(mesh, spec))


def padded_slots(num_members: int, mesh) -> list[int]:
  """Which member fills each slot of the member axis, padded to a multiple of the devices.

  The padding repeats the last member; its results are dropped.
  """
  num_devices = 1 if mesh is None else mesh.devices.size
  num_padded = -(-num_members // num_devices) * num_devices
  return list(range(num_members)) + [num_members - 1] * (num_padded - num_members)
