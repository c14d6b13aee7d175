"""Protocol-true simulators of the national registries, for tests and the demo.

- `population_soap_server`: the population registry, SOAP 1.1 + X-Road v4.0.
- `social_insurance_server`: the social insurance registry, REST/JSON.
- `conditions`: latency, failures, hangs and rate limits from a seeded RNG.
- `background`: run an ASGI app with uvicorn in a thread on a free port.
- `launch`: start both over one `SyntheticRegistry`.

`python -m vaxhub.adapters.simulators` runs both in the foreground.
"""
