"""Watch trained Snake agents play: side-by-side panels in one GIF, every panel on the same boards.

    python watch.py runs/<MG run> runs/<MG + outer critic run>                # runs/watch.gif
    python watch.py RUN_A RUN_B --seed 2 --games 20 --out docs/snake_watch.gif
    python watch.py RUN RUN --seed 0 1                                          # two seeds of one run

Each RUN_DIR is a Snake run (mg_snake.py or bmg_snake.py). Its policy θ is read from the run's
checkpoint.msgpack (the whole training state, and the update it was taken at), or from
seed<N>/model.msgpack (written by --save-model) when the run has no checkpoint or with
`--params model`; there the update is that of the run's last log point (metrics.csv).

The boards are the evaluation's: game i of the evaluation after U updates starts from
reset(split(reset_key, 512)[i]) and samples its step t with fold_in(action_key, t), where
(reset_key, action_key) = split(fold_in(PRNGKey(20220101), U)), as make_train's `evaluate` does.
Every panel plays boards --board-index .. --board-index + --games − 1 of the same evaluation
(U = --eval-update, by default the first run's update), so the panels are paired and, for a
run's own update, they are games of its logged `eval/episodic_return` (sampled actions) or
`eval/episodic_return_greedy` (--greedy). All 512 boards are played (as the evaluation does) and
their mean return is printed beside each panel's scores.

The GIF shows the games one after another: for each game a frame per step, from the starting
board to the end of the longest panel's game (a panel whose game is over keeps showing its end);
at most --max-frames frames. Boards are drawn by jumanji's own Snake viewer (SnakeViewer) into
the panels of one matplotlib figure (Agg backend) and written by matplotlib's PillowWriter.
"""

import dataclasses
import functools
import importlib
import json
import os
import sys
import time
from types import SimpleNamespace
from typing import Annotated, Literal, NamedTuple

import flax.serialization
import jax
import jax.numpy as jnp
import matplotlib
import matplotlib.animation
import matplotlib.pyplot as plt
import numpy as np
import tyro
from jumanji.environments.routing.snake.viewer import SnakeViewer  # jumanji exports it from no shorter path

import common_envs
import common_run
import plot

matplotlib.use("Agg")  # no windows: frames are drawn off-screen (this works after pyplot's import)

SNAKE_SCRIPTS = ("mg_snake.py", "bmg_snake.py")
MAX_FRAMES = 2 * common_envs.SNAKE_TIME_LIMIT  # two whole games at the time limit
FULL_BOARD_RETURN = common_envs.SNAKE_NUM_ROWS * common_envs.SNAKE_NUM_COLS - 1  # the snake fills the board


@dataclasses.dataclass
class Args:
    runs: Annotated[tuple[str, ...], tyro.conf.Positional, tyro.conf.arg(metavar="RUN_DIR...")] = ()
    """Snake run directories, one panel each (a run may be named twice, with two --seed values)"""
    seed: tuple[int, ...] = ()
    """the seed shown from each run: one value for every run, or one per run; none = each run's first seed"""
    params: Literal["auto", "checkpoint", "model"] = "auto"
    """where θ comes from: the run's checkpoint.msgpack, seed<N>/model.msgpack (--save-model); auto = the
    checkpoint if the run has one"""
    greedy: bool = False
    """greedy actions (argmax), as eval/episodic_return_greedy; default: sampled, as eval/episodic_return"""
    eval_update: int = -1
    """play the boards of the evaluation after this many updates; -1 = the first run's update"""
    board_index: int = 0
    """the first board shown: game i of the evaluation's 512 (0..511)"""
    games: int = 1
    """how many boards are shown one after another (board-index + games <= 512)"""
    max_frames: int = common_envs.SNAKE_TIME_LIMIT
    """at most this many frames (1..1000); a game of n steps takes n + 1 frames"""
    fps: int = 10
    """frames per second of the GIF (1..50)"""
    dpi: int = 80
    """resolution of the frames (20..150; the frames are held in memory until the GIF is written); each
    panel is 2.2 × 2.7 inches"""
    out: str = "runs/watch.gif"
    """where the GIF is written"""


def fail(message):
    """Bad input: one line on stderr and exit code 2, before anything is compiled or written."""
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def check_args(args: Args):
    """The bounds of every option (no file is read here)."""
    if not args.runs:
        fail("give one or more Snake run directories, e.g. python watch.py runs/<run_a> runs/<run_b>")
    games = common_envs.SNAKE_EVAL_GAMES
    rules = [
        (
            "--seed",
            len(args.seed),
            len(args.seed) in (0, 1, len(args.runs)),
            f"takes one value for every run or one per run ({len(args.runs)} runs)",
        ),
        ("--seed", min(args.seed, default=0), min(args.seed, default=0) >= 0, "must be >= 0"),
        ("--eval-update", args.eval_update, -1 <= args.eval_update < 2**31, "must be >= 0 (or -1: the first run's update)"),
        ("--board-index", args.board_index, args.board_index >= 0, "must be >= 0"),
        ("--games", args.games, args.games >= 1, "must be >= 1"),
        (
            "--board-index + --games",
            f"{args.board_index} + {args.games}",
            args.board_index + args.games <= games,
            f"must be <= {games} (the evaluation's boards)",
        ),
        ("--max-frames", args.max_frames, 1 <= args.max_frames <= MAX_FRAMES, f"must be in 1..{MAX_FRAMES}"),
        ("--fps", args.fps, 1 <= args.fps <= 50, "must be in 1..50"),
        ("--dpi", args.dpi, 20 <= args.dpi <= 150, "must be in 20..150"),
        ("--out", args.out, args.out.lower().endswith(".gif"), "must end in .gif"),
        ("--out", args.out, not os.path.isdir(args.out), "is a directory; give the GIF's path"),
    ]
    for option, value, ok, allowed in rules:
        if not ok:
            fail(f"{option} {allowed}, got {value}")
    existing = os.path.dirname(os.path.abspath(args.out))  # its folder, or the part that exists
    while not os.path.exists(existing):
        existing = os.path.dirname(existing)
    if not os.path.isdir(existing) or not os.access(existing, os.W_OK):
        fail(f"--out {args.out}: {existing} is not a writable directory")


# --------------------------------------------------------------------------------------------
# The runs: which policy each panel shows
# --------------------------------------------------------------------------------------------
class Panel(NamedTuple):
    run_dir: str
    seed: int
    label: str  # the variant, as plot.py names it
    update: int  # updates done when θ was taken
    source: str  # "checkpoint" or "model"
    module: object  # the run's script (mg_snake or bmg_snake), imported
    actor_params: dict


def read_run_args(run_dir):
    if not os.path.isdir(run_dir):
        fail(f"{run_dir} is not a directory" if os.path.exists(run_dir) else f"{run_dir} does not exist")
    try:
        with open(os.path.join(run_dir, "args.json")) as f:
            run_args = json.load(f)
        script, seeds = run_args["script"], list(range(run_args["seed"], run_args["seed"] + run_args["num_seeds"]))
    except FileNotFoundError:
        fail(f"{run_dir} is not a run directory (no args.json)")
    except (OSError, ValueError, KeyError, TypeError) as error:
        fail(f"{run_dir}: unreadable args.json ({type(error).__name__}: {error})")
    if script not in SNAKE_SCRIPTS:
        fail(f"{run_dir} is a run of {script}, not a Snake run ({' or '.join(SNAKE_SCRIPTS)})")
    return run_args, seeds


def model_path(run_dir, seed):
    return os.path.join(run_dir, f"seed{seed}", "model.msgpack")


def describe(run_dir, seed, params):
    """Checks that `run_dir` can give the policy of `seed` from `params` (without reading θ);
    returns (args.json, the source to read, the seed)."""
    run_args, seeds = read_run_args(run_dir)
    if seed is None:
        seed = seeds[0]
    if seed not in seeds:
        fail(f"--seed {seed} is not a seed of {run_dir} (its seeds: {seeds[0]}..{seeds[-1]})")
    has_checkpoint = os.path.isfile(os.path.join(run_dir, "checkpoint.msgpack"))
    has_model = os.path.isfile(model_path(run_dir, seed))
    source = ("checkpoint" if has_checkpoint else "model") if params == "auto" else params
    if source == "checkpoint" and not has_checkpoint:
        fail(f"{run_dir} has no checkpoint.msgpack" + ("; --params model reads its saved model" if has_model else ""))
    if source == "model" and not has_model:
        fail(
            f"{run_dir} has no {os.path.join(f'seed{seed}', 'model.msgpack')} (saved by --save-model)"
            + (" nor checkpoint.msgpack" if params == "auto" else "")
        )
    return run_args, source, seed


@functools.cache
def checkpoint_actors(run_dir, script):
    """(updates done, seeds, every seed's actor θ) from the run's checkpoint, read and checked as --resume
    does (common_run). The tree to restore into is only traced (eval_shape): nothing is compiled."""
    module = importlib.import_module(script[: -len(".py")])
    try:
        checkpoint = common_run.read_checkpoint(run_dir, module.Args, script)
        init, _, _, _ = module.make_train(module.Args(**checkpoint["args"]))
        fresh = jax.eval_shape(jax.vmap(init), jnp.asarray(checkpoint["seeds"]))
        runner = common_run.restore_runner(checkpoint, fresh)
    except common_run.BadInput as error:  # one line about --resume: here it names the run
        fail(f"{run_dir}: " + str(error).removeprefix(f"--resume {run_dir}: ").removeprefix("--resume: "))
    return int(checkpoint["updates_done"]), list(checkpoint["seeds"]), runner.params["actor"]


def last_logged_update(run_dir, run_args, seed):
    """The update of the seed's last metrics.csv row: when --save-model wrote model.msgpack."""
    try:
        steps = plot.read_metrics(run_dir).query("seed == @seed")["global_step"]
    except (OSError, ValueError) as error:
        fail(f"{run_dir}: cannot read the update of its model from metrics.csv ({type(error).__name__})")
    if steps.empty:
        fail(f"{run_dir}: metrics.csv has no row of seed {seed}, so the update of its model is unknown")
    return int(steps.max()) // (run_args["num_envs"] * run_args["num_steps"])


def load_panel(run_dir, seed=None, params="auto"):
    """One panel's policy: the actor θ of `seed` of the run, its update and its variant's name."""
    run_args, source, seed = describe(run_dir, seed, params)
    module = importlib.import_module(run_args["script"][: -len(".py")])
    actor = module.Actor(common_envs.SNAKE_NUM_ACTIONS)
    if source == "checkpoint":
        update, seeds, actors = checkpoint_actors(os.path.normpath(run_dir), run_args["script"])
        if seed not in seeds:
            fail(f"--seed {seed} is not in {run_dir}'s checkpoint (its seeds: {seeds})")
        actor_params = jax.tree.map(lambda x: np.asarray(x)[seeds.index(seed)], actors)
    else:
        try:
            with open(model_path(run_dir, seed), "rb") as f:
                actor_params = flax.serialization.msgpack_restore(f.read())["params"]["actor"]
        except Exception as error:  # a torn file or another format
            fail(f"{model_path(run_dir, seed)} is not a model saved by --save-model ({type(error).__name__})")
        update = last_logged_update(run_dir, run_args, seed)
    expected = jax.eval_shape(actor.init, jax.random.PRNGKey(0), jnp.zeros(common_envs.SNAKE_OBS_SHAPE))
    shapes = lambda tree: jax.tree.map(lambda x: (tuple(x.shape), str(x.dtype)), tree)
    if shapes(actor_params) != shapes(expected):
        fail(f"{run_dir}: the {source}'s actor does not fit {run_args['script']}'s Actor")
    return Panel(run_dir, seed, plot.variant_name(run_args), update, source, module, actor_params)


# --------------------------------------------------------------------------------------------
# Playing: the evaluation's games, recorded for the boards shown
# --------------------------------------------------------------------------------------------
class Play(NamedTuple):
    """One policy on every board of one evaluation; the `shown` boards recorded step by step."""

    returns: np.ndarray  # [games of the evaluation]: each game's return, as the evaluation sums it
    lengths: np.ndarray  # [games]: steps until the game ended (at most the time limit)
    scores: np.ndarray  # [time limit + 1, shown]: the running score after t steps (frozen at the end)
    crashed: np.ndarray  # [shown]: the last move left the board or hit the body
    body_state: np.ndarray  # [time limit + 1, shown, rows, cols]: the state after t steps
    head_position: np.ndarray  # [time limit + 1, shown, 2]
    fruit_position: np.ndarray  # [time limit + 1, shown, 2]
    length: np.ndarray  # [time limit + 1, shown]


@functools.cache
def player(actor, greedy):
    """The jitted games of one actor network and action mode (jumanji's Snake is built outside the
    trace: its constructor cannot run under jit)."""
    game = common_envs.snake_game()
    return jax.jit(functools.partial(play_all, game, actor, greedy))


def play_all(game, actor, greedy, actor_params, eval_update, shown):
    """The evaluation's games (common_envs' own loop), with the boards `shown` recorded at each step."""
    boards, obs, action_key = common_envs.snake_eval_boards(game, eval_update)

    def choose_actions(logits, t):
        return jnp.argmax(logits, axis=-1) if greedy else jax.random.categorical(jax.random.fold_in(action_key, t), logits)

    def record(state, action, next_state, timestep, alive):
        valid = jnp.take_along_axis(state.action_mask, action[:, None], axis=-1)[:, 0]
        return (*board_of(next_state, shown), jnp.where(alive, timestep.reward, 0.0)[shown], (alive & ~valid)[shown])

    policy_logits = lambda obs: actor.apply(actor_params, obs)
    episode_return, episode_length, record = common_envs.play_snake_games(
        game, policy_logits, boards, obs, choose_actions, record
    )
    *steps, reward, crash = record
    body, head, fruit, length = (jnp.concatenate([x0[None], x]) for x0, x in zip(board_of(boards, shown), steps))
    scores = jnp.concatenate([jnp.zeros((1, shown.shape[0])), jnp.cumsum(reward, axis=0)])
    return episode_return, episode_length, scores, jnp.any(crash, axis=0), body, head, fruit, length


def board_of(state, shown):
    """What the viewer draws of the boards `shown`: the body, the head's and the fruit's (row, col), the length."""
    return (
        state.body_state[shown],
        jnp.stack(state.head_position, -1)[shown],
        jnp.stack(state.fruit_position, -1)[shown],
        state.length[shown],
    )


def play(panel: Panel, eval_update, shown, greedy):
    """The panel's policy plays every board of the evaluation after `eval_update` updates, as
    make_train's evaluate does (the same keys, batch and masking; `greedy` or sampled actions),
    and records the boards `shown` (indices into the evaluation's games)."""
    play_jit = player(panel.module.Actor(common_envs.SNAKE_NUM_ACTIONS), greedy)
    outputs = play_jit(panel.actor_params, jnp.int32(eval_update), jnp.asarray(shown, jnp.int32))
    return Play(*jax.device_get(outputs))


# --------------------------------------------------------------------------------------------
# The frames and the GIF
# --------------------------------------------------------------------------------------------
class Frame(NamedTuple):
    game: int  # index into the shown boards
    step: int  # steps since the game's start
    steps: tuple  # per panel: the step its board shows (its game's end once over)
    scores: tuple  # per panel: the running score shown in its title


def frame_plan(plays, shown, max_frames):
    """Game after game, a frame per step from the starting board (step 0) to the end of the
    longest panel's game; a panel whose game is over shows its end. At most max_frames frames."""
    frames = []
    for g, board in enumerate(shown):
        ends = [int(p.lengths[board]) for p in plays]
        for k in range(max(ends) + 1):
            steps = tuple(min(k, end) for end in ends)
            frames.append(Frame(g, k, steps, tuple(int(p.scores[t, g]) for p, t in zip(plays, steps))))
            if len(frames) == max_frames:
                return frames
    return frames


def ending(play, g):
    if play.crashed[g]:
        return "crashed"
    if play.scores[-1, g] >= FULL_BOARD_RETURN:
        return "board full"
    return "time limit"


def render(panels, plays, shown, frames, eval_update, greedy, out, fps, dpi):
    """Draws the frames with jumanji's SnakeViewer into one figure's panels and writes the GIF."""
    rows, cols = common_envs.SNAKE_NUM_ROWS, common_envs.SNAKE_NUM_COLS
    width, height = 2.2, 2.7  # inches per panel
    # jumanji's public render() draws one board into the viewer's own figure; no public call draws into
    # given axes, so the panels use the two methods render() calls: _draw_board and _create_entities.
    viewer = SnakeViewer(render_mode="rgb_array")
    viewer.figure_size = (width, width)  # its line widths scale with the figure
    fig, axes = plt.subplots(1, len(panels), figsize=(width * len(panels), height), squeeze=False)
    axes = axes[0]
    fig.subplots_adjust(left=0.02, right=0.98, bottom=0.02, top=0.74, wspace=0.08)
    board_shape = SimpleNamespace(body_state=np.zeros((rows, cols)))
    titles, patches = [], [[] for _ in panels]
    for ax in axes:
        viewer._draw_board(ax, board_shape)  # the board's frame, drawn once
        ax.set_xlim(-0.4, cols + 0.4)
        ax.set_ylim(-0.4, rows + 0.4)
        ax.set_aspect("equal")
        titles.append(ax.set_title("", fontsize=7.5, linespacing=1.25))
    suptitle = fig.suptitle("", fontsize=7.5, y=0.985)
    mode = "greedy" if greedy else "sampled"
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    writer = matplotlib.animation.PillowWriter(fps=fps)
    with writer.saving(fig, out, dpi):
        for frame in frames:
            g, board = frame.game, shown[frame.game]
            suptitle.set_text(f"board {board} of the evaluation at update {eval_update:,} · step {frame.step} · {mode}")
            for i, (ax, panel, play, t, score) in enumerate(zip(axes, panels, plays, frame.steps, frame.scores)):
                over = t == int(play.lengths[board])  # t = min(step, the game's length)
                crash = over and bool(play.crashed[g])
                shown_t = t - 1 if crash else t  # a crash is drawn on the board before the fatal move
                state = SimpleNamespace(
                    body_state=play.body_state[shown_t, g],
                    length=play.length[shown_t, g],
                    head_position=play.head_position[shown_t, g],
                    fruit_position=play.fruit_position[shown_t, g],
                )
                while patches[i]:
                    patches[i].pop().remove()
                for patch in viewer._create_entities(state):  # add_artist: the limits are fixed (add_patch
                    patches[i].append(ax.add_artist(patch))  # would update them, a third of the time)
                if crash:  # where the head went: off the board (drawn at its edge) or into the body
                    row, col = play.head_position[t, g]
                    x = min(max(col + 0.5, -0.2), cols + 0.2)
                    y = min(max(rows - 1 - row + 0.5, -0.2), rows + 0.2)
                    patches[i].extend(ax.plot(x, y, "x", color="red", markersize=9, mew=2.5))
                status = f" · {ending(play, g)}" if over else ""
                titles[i].set_text(f"{panel.label} · seed {panel.seed}\nupdate {panel.update:,} · score {score}{status}")
            writer.grab_frame()
    plt.close(fig)


def run(args: Args):
    """Everything main() does after parsing: checks, loads, plays, renders. Returns the panels,
    their plays, the boards shown and the frames written (each frame's scores are its titles')."""
    check_args(args)
    seeds = args.seed * len(args.runs) if len(args.seed) == 1 else args.seed or (None,) * len(args.runs)
    for run_dir, seed in zip(args.runs, seeds):  # every run is checked before any θ is read
        describe(run_dir, seed, args.params)
    panels = [load_panel(run_dir, seed, args.params) for run_dir, seed in zip(args.runs, seeds)]
    eval_update = panels[0].update if args.eval_update == -1 else args.eval_update
    shown = list(range(args.board_index, args.board_index + args.games))
    start = time.time()
    plays = [play(panel, eval_update, shown, args.greedy) for panel in panels]
    played = time.time() - start
    frames = frame_plan(plays, shown, args.max_frames)
    render(panels, plays, shown, frames, eval_update, args.greedy, args.out, args.fps, args.dpi)
    size = os.path.getsize(args.out)
    print(
        f"wrote {args.out}: {len(frames)} frames, {size / 1e6:.2f} MB, {len(panels)} panels "
        f"(played in {played:.1f}s, drawn in {time.time() - start - played:.1f}s)"
    )
    mode = "greedy" if args.greedy else "sampled"
    for panel, p in zip(panels, plays):
        scores = ", ".join(str(int(p.returns[b])) for b in shown)
        print(
            f"{panel.label} · seed {panel.seed} · update {panel.update:,} ({panel.source}) | "
            f"score on board{'s' if len(shown) > 1 else ''} {shown[0]}{f'..{shown[-1]}' if len(shown) > 1 else ''}: "
            f"{scores} | mean of the evaluation's {len(p.returns)} boards ({mode}): {p.returns.mean():.4f}"
        )
    return panels, plays, shown, frames


def main():
    run(tyro.cli(Args))


if __name__ == "__main__":
    main()
