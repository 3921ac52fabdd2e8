"""The argument checks of `gumbel.distributions`, run once at its public functions.

Private to `gumbel`: the names here may change without notice. What is
checked, and the temperature rule that `categorical_temperature` and
`bernoulli_temperature` apply, are documented in `gumbel.distributions`'
module docstring (the users' contract); errors name the public function, the
argument, the value and what is allowed.
"""

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
ArrayLike = Any  # jax.typing.ArrayLike, kept loose for Python floats.


# ----------------------------------------------------------------------------
# Keys, logits, axes and flags.
# ----------------------------------------------------------------------------


def is_concrete(x) -> bool:
  return not any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree_util.tree_leaves(x))


def check_temperature(temperature: ArrayLike, name: str = 'temperature'):
  """Raises `ValueError` unless a concrete temperature is real, > 0 and finite.

  Accepts Python numbers and arrays of every integer and floating dtype
  (float16, bfloat16, float32, float64). Traced temperatures (inside `jit`,
  `vmap`, `grad`) are not checked, because their values are not known at
  trace time (see the module docstring).

  Args:
    temperature: a Python number or array of temperatures.
    name: how the error message names the value, e.g. 'temperature' or
      'rebar: temperature'.

  Raises:
    ValueError: if the temperature is not numeric, or an entry is <= 0, NaN
      or infinite.
  """
  check_positive(temperature, name, advice=(
      ' Use a small positive value such as 0.01 for nearly discrete samples, or '
      'hard=True for exactly one-hot samples.'))


def check_positive(value: ArrayLike, name: str, advice: str = ''):
  """Raises `ValueError` unless a concrete value is real, > 0 and finite.

  For positive hyperparameters that are not temperatures (a temperature has
  its own check and advice: `check_temperature`). Accepts Python numbers and
  arrays of every integer and floating dtype; traced values are not checked.

  Args:
    value: a Python number or array.
    name: how the error message names the value, e.g. "Estimator 'x': eta".
    advice: a sentence appended to the message, starting with a space.

  Raises:
    ValueError: if the value is not numeric, or an entry is <= 0, NaN or
      infinite.
  """
  if not is_concrete(value):
    return
  t = np.asarray(value)
  # jnp.issubdtype, unlike np.issubdtype, knows bfloat16 as floating.
  if not (jnp.issubdtype(t.dtype, jnp.integer) or jnp.issubdtype(t.dtype, jnp.floating)):
    raise ValueError(f'{name} must be a real number or array of them, got {value!r}.')
  values = t.astype(np.float64)
  bad = ~(np.isfinite(values) & (values > 0))
  if np.any(bad):
    shown = t if t.size <= 8 else t[bad][:8]
    raise ValueError(f'{name} must be > 0 and finite, got {shown!r}.{advice}')


def describe(x) -> str:
  """'a float32 array of shape (2, 3)', for errors."""
  dtype = getattr(x, 'dtype', None)
  if dtype is None:
    return f'{type(x).__name__} {x!r}'
  if jnp.issubdtype(dtype, jax.dtypes.prng_key):
    return f'a PRNG key array of shape {tuple(x.shape)}'
  article = 'an' if str(dtype).startswith('int') else 'a'
  return f'{article} {dtype} array of shape {tuple(np.shape(x))}'


def is_key(x) -> bool:
  dtype = getattr(x, 'dtype', None)
  return dtype is not None and jnp.issubdtype(dtype, jax.dtypes.prng_key)


def _looks_like_raw_key(x) -> bool:
  """uint32 [..., 2] (threefry) or [..., 4] (rbg): what `jax.random.PRNGKey` gives."""
  return x.dtype == jnp.uint32 and x.ndim >= 1 and x.shape[-1] in (2, 4)


_TORCH_ORDER = {
    'gumbel_softmax': " (PyTorch's F.gumbel_softmax(logits, tau) takes no key)",
}


def _key_first(fn, signature) -> str:
  return f'The key comes first: {fn}({signature}){_TORCH_ORDER.get(fn, "")}.'


def check_key(key, fn: str, signature: str):
  """Raises unless `key` is a typed PRNG key or a raw uint32 `PRNGKey` array."""
  if is_key(key) or getattr(key, 'dtype', None) == jnp.uint32:
    return
  if type(key).__name__ == 'RngStream':  # flax.nnx, checked by name: no flax import.
    stream = f'rngs.{getattr(key, "tag", None) or "gumbel"}'
    raise ValueError(
        f'{fn}: key must be a PRNG key, got the nnx.RngStream {stream} itself. Call it for a '
        f'fresh key: {fn}({stream}(), ...), not {fn}({stream}, ...).')
  raise ValueError(
      f'{fn}: key must be a PRNG key (jax.random.key(seed), or the raw uint32 '
      f'jax.random.PRNGKey(seed)), got {describe(key)}. '
      + _key_first(fn, signature))


def as_logits(logits, fn: str, name: str = 'logits', signature: str = '') -> Array:
  """`logits` as a floating JAX array.

  Python numbers are converted to float. Integer, boolean and key arrays
  raise: integer "logits" are usually class indices or a PRNG key passed in
  the wrong place. `signature`, for functions that take a key, is shown when
  `logits` looks like one.
  """
  if isinstance(logits, (int, float)) and not isinstance(logits, bool):
    return jnp.asarray(float(logits))
  if is_key(logits):
    raise ValueError(f'{fn}: {name} must be a floating-point array, got '
                     f'{describe(logits)}. ' + _key_first(fn, signature or '...'))
  logits = jnp.asarray(logits)
  if jnp.issubdtype(logits.dtype, jnp.floating):
    return logits
  message = (f'{fn}: {name} must be a floating-point array, got '
             f'{describe(logits)}. ')
  if signature and _looks_like_raw_key(logits):
    message += 'It looks like a raw PRNG key. ' + _key_first(fn, signature)
  else:
    message += (f'Integer or boolean {name} are often class indices passed by '
                f'mistake; if they are logits, cast them: '
                f'{name}.astype(jnp.float32).')
  raise ValueError(message)


def as_points(x, fn: str, name: str) -> Array:
  """Points at which a density is evaluated: any real dtype (one-hot integers too)."""
  if is_key(x) or jnp.issubdtype(jnp.asarray(x).dtype, jnp.complexfloating):
    raise ValueError(f'{fn}: {name} must be a real array, got {describe(x)}.')
  return jnp.asarray(x)


def check_static_bool(value, fn: str, name: str):
  if not isinstance(value, (bool, np.bool_)):
    raise ValueError(
        f'{fn}: {name} must be True or False, got {describe(value)}. It '
        f'selects the computation, so under jit it must be static: '
        f"jax.jit(..., static_argnames=('{name}',)).")


def check_categorical(x, axis, fn: str, name: str = 'logits') -> int:
  """Checks `axis` (one int), the rank and the number of categories of `x`.

  Returns:
    The non-negative category axis.
  """
  if isinstance(axis, (bool, np.bool_)) or not isinstance(axis, (int, np.integer)):
    hint = ''
    if isinstance(axis, (tuple, list)):
      hint = (' There is one category axis; to relax over several axes, '
              'merge them into one with reshape first.')
    elif isinstance(axis, jax.core.Tracer):
      hint = (" Under jit it must be static: jax.jit(..., "
              "static_argnames=('axis',)).")
    raise ValueError(f'{fn}: axis must be an int (the category axis), got '
                     f'{axis!r}.{hint}')
  axis = int(axis)
  shape = jnp.shape(x)
  ndim = len(shape)
  if ndim == 0:
    raise ValueError(
        f'{fn}: {name} must have at least one dimension (the category axis), '
        f'got a scalar {name} of shape (). For a single Bernoulli variable use '
        'relaxed_bernoulli, or pass logits of shape [K].')
  if not -ndim <= axis < ndim:
    raise ValueError(
        f'{fn}: axis={axis} is out of range for {name} of shape {shape}: '
        f'allowed are {-ndim}..{ndim - 1}.')
  if shape[axis] == 0:
    raise ValueError(
        f'{fn}: {name} of shape {shape} has no categories (size 0 on the '
        f'category axis {axis}); a categorical needs at least one.')
  return axis % ndim


def compute_dtype(dtype) -> jnp.dtype:
  """float32, or float64 when asked for float64 (needs jax_enable_x64)."""
  dtype = jnp.dtype(dtype)
  if not jnp.issubdtype(dtype, jnp.floating):
    raise ValueError(f'dtype must be a floating dtype, got {dtype}.')
  return jnp.promote_types(dtype, jnp.float32)


def float_result_type(*args) -> jnp.dtype:
  """The promoted dtype of `args`, or float32 if that is not floating."""
  dtype = jnp.result_type(*args)
  return dtype if jnp.issubdtype(dtype, jnp.floating) else jnp.dtype(jnp.float32)


# ----------------------------------------------------------------------------
# The temperature rule (module docstring).
# ----------------------------------------------------------------------------

_CATEGORICAL_FORMS = (
    'Accepted temperature shapes: a scalar; (b) a batch shape, as TensorFlow '
    'Probability reads it ([B] for logits [B, K]); (c) the logits\' shape with '
    'size 1 on the category axis ([B, 1] for [B, K], as `logits / tau` '
    'broadcasts). Either broadcasts one way only: the temperature over the '
    'logits\' batch, or the logits over the temperature (logits [K] with tau '
    '[T] give [T, K] samples), never into a batch shape that neither has. '
    'When both readings fit and differ, the one that keeps the logits\' shape '
    'is used.')


_BERNOULLI_FORMS = (
    'Accepted temperature shapes: a scalar, or any shape that broadcasts '
    'against the logits (both directions: logits [D] with tau [T, 1] give '
    '[T, D] samples).')


def _left_pad(shape, n):
  return (1,) * (n - len(shape)) + tuple(shape)


def _without(shape, axis):
  """`shape` without the (negative) `axis`."""
  position = len(shape) + axis
  return tuple(shape[:position]) + tuple(shape[position + 1:])


def _with(shape, axis, size):
  """`shape` with a (negative) `axis` of `size` inserted."""
  position = len(shape) + 1 + axis
  return tuple(shape[:position]) + (size,) + tuple(shape[position:])


def _readings(tau_shape, shape, axis):
  """The readings of a temperature of `tau_shape` for points of `shape`.

  Args:
    tau_shape: the temperature's shape.
    shape: the logits' shape (for densities, that of the points and logits
      broadcast).
    axis: the category axis, negative.

  Returns:
    `(batch_shape, readings)`: the points' batch shape, and for 'batch' (b)
    and, where the temperature has size 1 at the category axis, 'logits' (c):
    `None` if the reading does not broadcast, else `(tau_batch, out_batch,
    one_way)`: the temperature's batch shape in that reading, the broadcast
    batch shape, and whether that is the temperature's or the points' batch
    shape (left-padded), i.e. one of them broadcast over the other.
  """
  batch = _without(shape, axis)
  candidates = {'batch': tuple(tau_shape)}
  if len(tau_shape) >= -axis and tau_shape[axis] == 1:
    candidates['logits'] = _without(tau_shape, axis)
  readings = {}
  for reading, tau_batch in candidates.items():
    try:
      out = tuple(np.broadcast_shapes(tau_batch, batch))
    except ValueError:
      readings[reading] = None
      continue
    n = len(out)
    readings[reading] = (tau_batch, out, out in (_left_pad(tau_batch, n), _left_pad(batch, n)))
  return batch, readings


def _same_result(a, b) -> bool:
  """Whether two readings put the same temperature on every entry.

  Both are reshapes of one array; they agree iff they broadcast to the same
  shape with their non-1 axes at the same positions.
  """
  (tau_a, out_a, _), (tau_b, out_b, _) = a, b
  if out_a != out_b:
    return False
  n = len(out_a)
  non_1 = lambda s: [i for i, size in enumerate(_left_pad(s, n)) if size != 1]
  return non_1(tau_a) == non_1(tau_b)


def _resolve(tau_shape, shape, axis):
  """Applies the rule; returns the reading's `(tau_batch, out_batch)`, or the
  error's kind ('ambiguous' or 'none') and the readings."""
  batch, readings = _readings(tau_shape, shape, axis)
  fitting = {r: v for r, v in readings.items() if v is not None and v[2]}
  if len(fitting) == 2 and not _same_result(fitting['batch'], fitting['logits']):
    keeping = [r for r, v in fitting.items() if v[1] == batch]
    if len(keeping) != 1:
      return 'ambiguous', readings
    fitting = {keeping[0]: fitting[keeping[0]]}
  if not fitting:
    return 'none', readings
  tau_batch, out, _ = fitting.get('batch') or fitting['logits']
  return (tau_batch, out), readings


def _spelling(reading, tau_shape, out_batch, shape, axis, operands) -> str:
  """How to ask for `reading`'s result unambiguously, as code."""
  # Candidates: the full batch shape; the full shape with 1 on the category
  # axis; the full batch shape with the points broadcast too (always works).
  for target, full in [(out_batch, shape), (_with(out_batch, axis, 1), shape),
                       (out_batch, _with(out_batch, axis, shape[axis]))]:
    resolved, _ = _resolve(target, full, axis)
    # The same batch shape, and the temperature's own axes are its axes.
    if isinstance(resolved, str) or resolved[1] != out_batch or (
        _left_pad(resolved[0], len(out_batch)) != out_batch):
      continue
    base, base_shape = 'temperature', tuple(tau_shape)
    if reading == 'logits' and len(target) == len(out_batch):
      base, base_shape = f'jnp.squeeze(temperature, {axis})', _without(tau_shape, axis)
    if base_shape == target:
      spelling = 'the same temperature' if base == 'temperature' else base
    else:
      spelling = f'jnp.broadcast_to({base}, {target})'
    if full != shape:
      spelling += f' with {operands} broadcast to {full}'
    return spelling
  raise AssertionError('unreachable: a full batch shape is always unambiguous')


def _temperature_error(kind, tau_shape, shape, axis, readings, fn, what, operands, result):
  batch = _without(shape, axis)
  where = f'{what} (batch shape {batch}, category axis {axis})'
  names = {'batch': 'as a batch shape (TensorFlow Probability\'s reading)',
           'logits': 'with size 1 on the category axis (as `logits / tau` broadcasts)'}

  def result_shape(out):
    return _with(out, axis, shape[axis]) if result == 'samples' else out

  def choice(reading):
    out = readings[reading][1]
    return (f'{names[reading].split(" (")[0]}, {result_shape(out)}: '
            f'{_spelling(reading, tau_shape, out, shape, axis, operands)}')

  if kind == 'ambiguous':
    both = [readings['batch'], readings['logits']]
    keep = 'both keep' if all(v[1] == batch for v in both) else 'neither keeps'
    parts = [f'read {names[r]} it gives {result} of shape {result_shape(readings[r][1])}'
             for r in ('batch', 'logits')]
    return ValueError(
        f'{fn}: temperature of shape {tuple(tau_shape)} is ambiguous against {where}: '
        f'its two readings give different {result} and {keep} the shape of '
        f'{operands}: {parts[0]}; {parts[1]}. Say which, with a temperature '
        f'that has one reading: {choice("batch")}; {choice("logits")}.')
  outer = [r for r, v in readings.items() if v is not None]
  hint = ''
  if outer:
    parts = [f'read {names[r]} it would broadcast to batch shape {readings[r][1]}'
             for r in outer]
    hint = (f' A temperature is never broadcast into a batch shape that neither it '
            f'nor {operands} have: {"; ".join(parts)}. If you meant that, pass '
            f'{"; ".join(choice(r) for r in outer)}.')
  return ValueError(
      f'{fn}: temperature of shape {tuple(tau_shape)} does not broadcast against '
      f'{where}.{hint} {_CATEGORICAL_FORMS}')


def categorical_temperature(temperature, shape, axis, dtype, fn, what,
                             operands='the logits', result='samples'):
  """Applies the temperature rule for a category axis (module docstring).

  Args:
    temperature: a scalar or array of temperatures.
    shape: the shape of the logits (for densities, of x and logits broadcast).
    axis: the category axis, negative (counted from the end).
    dtype: the compute dtype.
    fn: the public function's name, for errors.
    what: the shapes in words, for errors ('logits of shape (2, 3)').
    operands: the arrays of `shape` in words, for errors.
    result: what the function returns, in words, for errors.

  Returns:
    `(tau, out_shape)`: the output shape, i.e. the broadcast batch shape with
    the category axis of size `shape[axis]` at `axis`, and the temperature
    with the rank of `out_shape` and size 1 on the category axis.
  """
  check_temperature(temperature, f'{fn}: temperature')
  tau = jnp.asarray(temperature, dtype)
  shape = tuple(shape)
  resolved, readings = _resolve(tau.shape, shape, axis)
  if isinstance(resolved, str):
    raise _temperature_error(resolved, tau.shape, shape, axis, readings, fn, what,
                             operands, result)
  tau_batch, out_batch = resolved
  # Left-pad to the batch rank (explicitly: rank promotion may be disabled).
  tau = tau.reshape(_left_pad(tau_batch, len(out_batch)))
  out_shape = _with(out_batch, axis, shape[axis])
  return jnp.expand_dims(tau, len(out_batch) + 1 + axis), out_shape


def bernoulli_temperature(temperature, shape, dtype, fn, what):
  """Broadcasts a temperature against `shape` in both directions.

  Args:
    temperature: a scalar or array of temperatures.
    shape: the shape of the logits (for densities, of x and logits broadcast).
    dtype: the compute dtype.
    fn: the public function's name, for errors.
    what: the shapes in words, for errors.

  Returns:
    `(tau, out_shape)`: the broadcast shape, and the temperature left-padded
    to its rank.
  """
  check_temperature(temperature, f'{fn}: temperature')
  tau = jnp.asarray(temperature, dtype)
  try:
    out_shape = np.broadcast_shapes(tau.shape, tuple(shape))
  except ValueError:
    raise ValueError(
        f'{fn}: temperature of shape {tau.shape} does not broadcast against '
        f'{what}. {_BERNOULLI_FORMS}') from None
  tau = tau.reshape(_left_pad(tau.shape, len(out_shape)))
  return tau, out_shape


# ----------------------------------------------------------------------------
# Parameters of the distribution objects (gumbel.distrax_adapter,
# gumbel.numpyro_adapter).
# ----------------------------------------------------------------------------


def _logits_or_probs(logits, probs, fn, bernoulli=False):
  """The logits, given exactly one of `logits` and `probs`."""
  if (logits is None) == (probs is None):
    raise ValueError(f'{fn}: pass exactly one of logits and probs.')
  if logits is not None:
    return as_logits(logits, fn)
  probs = as_logits(probs, fn, 'probs')
  if bernoulli:
    return jnp.log(probs) - jnp.log1p(-probs)
  return jnp.log(probs)


def relaxed_categorical_parameters(temperature, logits, probs, fn):
  """`(logits [batch..., K], temperature [batch...])`, broadcast by the rule.

  The temperature of the full batch shape is unambiguous for any points of
  more leading axes (module docstring), so the distribution objects store it
  in that form.
  """
  logits = _logits_or_probs(logits, probs, fn)
  check_categorical(logits, -1, fn)
  tau, shape = categorical_temperature(
      temperature, logits.shape, -1, compute_dtype(logits.dtype), fn,
      f'logits of shape {logits.shape}')
  return jnp.broadcast_to(logits, shape), jnp.broadcast_to(jnp.squeeze(tau, -1), shape[:-1])


def relaxed_bernoulli_parameters(temperature, logits, probs, fn):
  """`(logits, temperature)`, both of their broadcast shape."""
  logits = _logits_or_probs(logits, probs, fn, bernoulli=True)
  tau, shape = bernoulli_temperature(
      temperature, logits.shape, compute_dtype(logits.dtype), fn,
      f'logits of shape {logits.shape}')
  return jnp.broadcast_to(logits, shape), jnp.broadcast_to(tau, shape)
