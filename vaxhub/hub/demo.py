"""`vaxhub demo`: the hub on SQLite with registry simulators and sample data.

The sample data is a synthetic Vietnamese population (people, sites,
vaccinators, doses) stored through the same transaction path that hospitals
use, so the demo exercises conditional creates and reference rewriting. The
registry simulators serve the same people, so identity checks find them.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from vaxhub.adapters.registry_data import Citizen, SyntheticRegistry
from vaxhub.fhir import synthetic
from vaxhub.fhir.text import fold
from vaxhub.hub.certificates.signing_keys import HubSigningKeys
from vaxhub.hub.demo_clients import register_demo_clients, token_instructions, web_page_instructions
from vaxhub.hub.operations.transaction import process_bundle
from vaxhub.hub.storage.engine import make_engine, upgrade
from vaxhub.hub.storage.store import FhirStore
from vaxhub.hub.verification.enqueue import VerificationEnqueuer
from vaxhub.settings import load_settings

console = Console()
SEED = 2021


def registry_of(population: synthetic.Population) -> SyntheticRegistry:
    """The population as the national registries would hold it (people with a CCCD)."""
    return SyntheticRegistry(
        Citizen(cccd=p.cccd, full_name=p.full_name, birth_date=p.birth_date_text, sex=p.sex, cmnd=p.cmnd, bhxh=p.bhxh)
        for p in population.people
        if p.cccd
    )


def load_population(store: FhirStore, population: synthetic.Population, *, base: str, show_progress: bool = True) -> dict[str, int]:
    """Store the population through transaction Bundles; returns entries per response status."""
    bundles = list(synthetic.population_bundles(population, entries_per_bundle=100))
    statuses: dict[str, int] = {}
    with Progress(
        TextColumn("[bold]loading sample data"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        console=console, disable=not show_progress,
    ) as progress:
        task = progress.add_task("bundles", total=len(bundles))
        for bundle in bundles:
            response = process_bundle(store, bundle, base=base)
            for entry in response["entry"]:
                status = entry["response"]["status"]
                statuses[status] = statuses.get(status, 0) + 1
            progress.advance(task)
    return statuses


def _national_phone(e164: str | None) -> str | None:
    """+84912345678 as a person types it: 0912345678."""
    return "0" + e164[3:] if e164 and e164.startswith("+84") else e164


def run_demo(*, port: int, people: int, data_dir: str, serve: bool = True) -> None:
    from vaxhub.adapters.simulators.launch import start_registry_simulators

    folder = Path(data_dir).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{folder / 'vaxhub.db'}"
    # Keys, exports and the token-signing key live beside the demo's database, not in ./vaxhub-data.
    settings = load_settings(database_url=url, data_dir=folder)
    engine = make_engine(url)
    upgrade(engine)
    store = FhirStore(engine, listeners=[VerificationEnqueuer()])
    base = f"http://127.0.0.1:{port}/fhir"

    population = synthetic.generate_population(people, seed=SEED)
    statuses = load_population(store, population, base=base)
    created = statuses.get("201 Created", 0)
    console.print(f"sample data: {created} resources created, {statuses.get('200 OK', 0)} already present ({folder / 'vaxhub.db'})")

    keys = HubSigningKeys.from_settings(settings)
    if not keys.exists():  # so the demo can issue certificates at once
        keys.init()
    sims = start_registry_simulators(registry_of(population))
    first = next(p for p in population.people if population.doses_of(p) and p.cccd and p.phone)
    citizen = next(p for p in population.people if population.doses_of(p) and p.cccd and p.phone and p.birth_date)
    callers = register_demo_clients(engine, folder / "clients", population.home_site(first).code)
    console.print(
        "\n[bold green]vaxhub demo[/bold green]\n"
        f"  API docs (OpenAPI)     http://127.0.0.1:{port}/docs\n"
        f"  CapabilityStatement    {base}/metadata\n"
        f"  search by name         {base}/Patient?name={quote(fold(first.family + ' ' + first.given))}\n"
        f"  by CCCD                {base}/Patient?identifier={first.cccd or ''}\n"
        f"  doses in 2021-08       {base}/Immunization?date=2021-08&_sort=date&_include=Immunization:patient\n"
        f"  population registry    {sims.population_wsdl_url}  (SOAP simulator)\n"
        f"  social insurance       {sims.social_insurance_url}  (REST simulator, X-API-Key: {sims.api_key})\n"
        f"  certificate trust list http://127.0.0.1:{port}/certificates/trust-list  (signing keys in {keys.directory})\n"
        f"  issue a certificate    POST http://127.0.0.1:{port}/certificates/patients/<Patient id>  (once the identity is verified)\n"
        + web_page_instructions(f"http://127.0.0.1:{port}", citizen.full_name, citizen.birth_date_text, _national_phone(citizen.phone))
        + token_instructions(callers, f"http://127.0.0.1:{port}", first.cccd, _national_phone(first.phone))
        + "\n",
        soft_wrap=True,
    )
    if not serve:
        sims.stop()
        return
    # The verification worker drains the queue the sample data filled: the SOAP
    # population registry, cross-checked with the REST social-insurance simulator.
    import threading

    from vaxhub.hub.verification.worker import run_worker

    worker_settings = settings.model_copy(update={"population_registry_wsdl": sims.population_wsdl_url, "social_insurance_url": sims.social_insurance_url, "social_insurance_api_key": sims.api_key, "verification_concurrency": 16})
    stop_worker = threading.Event()
    worker = threading.Thread(target=run_worker, args=(worker_settings, engine), kwargs={"stop": stop_worker}, name="verification-worker", daemon=True)
    worker.start()
    # The link worker puts every sample Patient in its person (golden Patients,
    # the review queue) and re-links records as their verifications arrive.
    from vaxhub.hub.audit.trail import AuditTrail
    from vaxhub.hub.mpi.service import MasterPatientIndex
    from vaxhub.hub.mpi.worker import LinkWorker
    from vaxhub.hub.verification.worker import build_population_registry

    index = MasterPatientIndex(engine, trail=AuditTrail(engine, chains=settings.audit_chains),
                               registry=build_population_registry(worker_settings, concurrency=2))
    linker = threading.Thread(target=LinkWorker(index).run, kwargs={"stop": stop_worker}, name="link-worker", daemon=True)
    linker.start()
    console.print(f"  verification status    http://127.0.0.1:{port}/ops/verification/status  (worker running)\n"
                  f"  master patient index   http://127.0.0.1:{port}/ops/mpi/stats  (link worker running)\n", soft_wrap=True)
    import uvicorn

    from vaxhub.hub.app import build_app

    try:
        uvicorn.run(build_app(settings.model_copy(update={"auto_migrate": False}), engine=engine), host="127.0.0.1", port=port, log_level="warning")
    finally:
        stop_worker.set()
        worker.join(15)
        linker.join(15)
        sims.stop()
