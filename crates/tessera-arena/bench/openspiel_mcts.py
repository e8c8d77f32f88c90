#!/usr/bin/env python3
"""OpenSpiel MCTS timing for `tessera bench arena` (side by side with the Rust MCTS).

Times OpenSpiel 1.4's C++ `pyspiel.MCTSBot` and Python `open_spiel.python.algorithms.mcts.MCTSBot` with GTBench's
settings (uct_c=2, 1000 simulations, one random rollout, solve=True) on each game's initial state (Breakthrough
8x3 as GTBench configures it; chance nodes resolved to their last outcome). Prints one JSON object: {game: {"cpp_ms": .., "python_ms": ..}} or
{"skipped": reason} when open_spiel is not importable.
"""
import argparse
import json
import sys
import time

GAMES = {
    "tic_tac_toe": "tic_tac_toe",
    "connect_four": "connect_four",
    "breakthrough": "breakthrough(rows=8,columns=3)",
    "nim": "nim",
    "pig": "pig(winscore=20)",
    # Imperfect-information games: OpenSpiel's MCTSBot searches the true state (clairvoyant, as in GTBench).
    "kuhn_poker": "kuhn_poker",
    "liars_dice": "liars_dice",
    "blind_auction": "first_sealed_auction",
}


def start_state(game):
    """The initial state with every chance node resolved to its last outcome (Tessera's bench does the same)."""
    state = game.new_initial_state()
    while state.is_chance_node():
        state.apply_action(state.chance_outcomes()[-1][0])
    return state


def time_bot(bot, state, moves):
    bot.step(state)  # warm-up
    t0 = time.perf_counter()
    for _ in range(moves):
        bot.step(state)
    return (time.perf_counter() - t0) * 1000.0 / moves


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--games", default="tic_tac_toe,connect_four,breakthrough")
    ap.add_argument("--sims", type=int, default=1000)
    ap.add_argument("--cpp-moves", type=int, default=20)
    ap.add_argument("--python-moves", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    try:
        import numpy as np
        import pyspiel
        from open_spiel.python.algorithms import mcts
    except Exception as e:  # noqa: BLE001 - any import failure means "skipped"
        print(json.dumps({"skipped": f"open_spiel not importable: {e}"}))
        return 0
    out = {}
    for gid in a.games.split(","):
        if gid not in GAMES:
            continue
        game = pyspiel.load_game(GAMES[gid])
        state = start_state(game)
        cpp = pyspiel.MCTSBot(game, pyspiel.RandomRolloutEvaluator(1, a.seed), 2.0, a.sims, 1000, True, a.seed, False)
        rs = np.random.RandomState(a.seed)
        py = mcts.MCTSBot(game, 2.0, a.sims, mcts.RandomRolloutEvaluator(1, rs), solve=True, random_state=rs)
        out[gid] = {"cpp_ms": time_bot(cpp, state, a.cpp_moves), "python_ms": time_bot(py, state, a.python_moves)}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
