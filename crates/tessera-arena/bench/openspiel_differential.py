#!/usr/bin/env python3
"""Random playouts of OpenSpiel 1.4 games, recorded for the Rust differential test
(`tests/openspiel_differential.rs`): at every node the legal actions (or chance outcomes) and at the end the
returns. Breakthrough actions are recorded as OpenSpiel strings ("a7b6", "*" for captures) because its action
ids differ from Tessera's. Usage: python openspiel_differential.py N > ../tests/data/openspiel_playouts.jsonl
"""
import json
import sys

import numpy as np
import pyspiel

GAMES = {
    "tic_tac_toe": "tic_tac_toe",
    "connect_four": "connect_four",
    "breakthrough": "breakthrough(rows=8,columns=3)",
    "nim": "nim",
    "kuhn_poker": "kuhn_poker",
    "liars_dice": "liars_dice",
    "blind_auction": "first_sealed_auction",
    "pig": "pig(winscore=20)",
}


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 200
    rng = np.random.RandomState(2024)
    for gid, spec in GAMES.items():
        game = pyspiel.load_game(spec)
        for _ in range(n):
            s = game.new_initial_state()
            steps = []
            while not s.is_terminal():
                if s.is_chance_node():
                    outcomes = [int(a) for a, _ in s.chance_outcomes()]
                    a = int(rng.choice(outcomes))
                    steps.append({"chance": outcomes, "a": a})
                else:
                    legal = [int(x) for x in s.legal_actions()]
                    a = int(rng.choice(legal))
                    step = {"p": s.current_player(), "legal": legal, "a": a}
                    if gid == "breakthrough":
                        step["legal"] = sorted(s.action_to_string(x) for x in legal)
                        step["a"] = s.action_to_string(a)
                    steps.append(step)
                s.apply_action(a)
            print(json.dumps({"game": gid, "steps": steps, "returns": list(s.returns())}, separators=(",", ":")))


if __name__ == "__main__":
    main()
