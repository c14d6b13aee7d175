"""The national registries for the load test, slow and failing, in a process
of their own (a registry is another machine; its CPU should not be counted as
the hub's).

    python bench/load/registries.py --registry citizens.json --latency 0.2 --jitter 0.1 \
        --error-rate 0.05 --timeout-rate 0.01 --hang-seconds 12

Prints the population registry's WSDL URL and the social insurance API root,
one per line, then serves until SIGTERM.
"""

from __future__ import annotations

import argparse
import gc
import signal
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from vaxhub.adapters.registry_data import SyntheticRegistry  # noqa: E402
from vaxhub.adapters.simulators.conditions import SimulatedConditions  # noqa: E402
from vaxhub.adapters.simulators.launch import start_registry_simulators  # noqa: E402

API_KEY = "load-test-api-key"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--registry", required=True, help="JSON file of citizens")
    parser.add_argument("--latency", type=float, default=0.2)
    parser.add_argument("--jitter", type=float, default=0.1)
    parser.add_argument("--error-rate", type=float, default=0.05)
    parser.add_argument("--timeout-rate", type=float, default=0.01)
    parser.add_argument("--hang-seconds", type=float, default=12.0, help="a timed-out call hangs this long (past the client's timeout)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    conditions = SimulatedConditions(
        latency=args.latency, jitter=args.jitter, error_rate=args.error_rate, timeout_rate=args.timeout_rate,
        hang_seconds=args.hang_seconds, seed=args.seed,
    )
    # Blocked before the server threads start (they inherit the mask), so sigwait gets them.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    sims = start_registry_simulators(
        SyntheticRegistry.from_json_file(args.registry),
        population_conditions=conditions, social_insurance_conditions=conditions, api_key=API_KEY,
    )
    # The citizens (a population of them) live as long as the process: out of
    # the cyclic collector's sight, as in the hub's own processes (vaxhub.hub.gc_tuning).
    gc.collect()
    gc.freeze()
    print(sims.population_wsdl_url, flush=True)
    print(sims.social_insurance_url, flush=True)
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    sims.stop()


if __name__ == "__main__":
    main()
