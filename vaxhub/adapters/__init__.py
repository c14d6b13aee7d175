"""Clients for the national registries behind small ports, and their simulators.

- `ports`: `PopulationRegistry`, `SocialInsurance`, `PersonClaim`,
  `VerificationResult`, `InsuranceRecord`, `Coverage`.
- `errors`: the `RegistryError` tree (timeouts, faults, throttling, ...).
- `agreement`: when a claimed name, birth date or sex agrees with the registry.
- `registry_data`: the in-memory synthetic registry of citizens.
- `fakes`: in-memory adapters of both ports over that registry.
- `population_soap`: the population registry over SOAP/X-Road v4.0 (zeep),
  described by `population_registry.wsdl`.
- `social_insurance_rest`: the social insurance registry over REST (httpx).
- `simulators`: protocol-true HTTP simulators of both registries.
"""
