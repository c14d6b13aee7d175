"""Run both registry simulators until interrupted.

    python -m vaxhub.adapters.simulators [--people 50] [--seed 0] [--registry people.json]
        [--population-port 8081] [--insurance-port 8082]
"""

from __future__ import annotations

import argparse
import threading

from vaxhub.adapters.registry_data import SyntheticRegistry
from vaxhub.adapters.simulators.launch import start_registry_simulators


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m vaxhub.adapters.simulators", description=__doc__)
    parser.add_argument("--people", type=int, default=50,
                        help="people to generate (the four SAMPLE_CITIZENS are always added)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--registry", help="JSON file of citizens instead of a generated registry")
    parser.add_argument("--population-port", type=int, default=8081, help="0 for any free port")
    parser.add_argument("--insurance-port", type=int, default=8082, help="0 for any free port")
    args = parser.parse_args(argv)
    registry = (SyntheticRegistry.from_json_file(args.registry) if args.registry
                else SyntheticRegistry.generated(args.people, seed=args.seed, with_samples=True))
    with start_registry_simulators(
        registry, population_port=args.population_port, social_insurance_port=args.insurance_port
    ) as sims:
        print(f"population registry WSDL: {sims.population_wsdl_url}")
        print(f"social insurance API:     {sims.social_insurance_url} "
              f"(X-API-Key: {sims.api_key}; token: {sims.token_url} {sims.client_id}/{sims.client_secret})")
        print(f"{len(registry)} people; Ctrl-C to stop")
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass


if __name__ == "__main__":
    main()
