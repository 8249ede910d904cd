"""``manage.py load_sample_data``: fill the clinic with deterministic demo data.

Running it again creates nothing new (rows are looked up by natural keys) and leaves
edits made in the admin alone, so it is safe to run before every demo.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import transaction
from django.db.models import Q

from example_project.petclinic.models import Owner, Pet, Vaccine

FIRST_NAMES = [
    "Alice", "Bruno", "Chloe", "Dmitri", "Elena", "Farid", "Grace", "Hiro", "Ines", "Jonas",
    "Keiko", "Liam", "Maya", "Nikolai", "Olivia", "Pedro", "Quinn", "Rosa", "Samir", "Tara",
]  # fmt: skip
LAST_NAMES = [
    "Anders", "Baptiste", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad", "Ito",
    "Jensen", "Kowalski", "Laurent", "Moreau", "Novak", "Okafor", "Petrov", "Quintana",
    "Rossi", "Schmidt", "Tanaka",
]  # fmt: skip
CITIES = ["Lisbon", "Lyon", "Madison", "Osaka", "Tallinn", "Windhoek"]
PET_NAMES = [
    "Biscuit", "Luna", "Pepper", "Milo", "Nala", "Oscar", "Pickle", "Rex", "Shadow", "Tiger",
    "Coco", "Daisy", "Felix", "Ginger", "Hazel", "Juniper", "Kiwi", "Loki", "Mochi", "Nugget",
    "Olive", "Peanut", "Poppy", "Rocky", "Sunny", "Toffee", "Waffle", "Willow", "Ziggy", "Zorro",
]  # fmt: skip
VACCINES = [
    ("Rabies", 36),
    ("Distemper", 36),
    ("Parvovirus", 36),
    ("Feline leukemia", 12),
    ("Myxomatosis", 12),
    ("Bordetella", 6),
]
OWNER_COUNT = 20
PETS_PER_OWNER = 3
SEED = 20240601

DEMO_ADMIN_USERNAME = "admin"
DEMO_ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    help = (
        f"Create {OWNER_COUNT} owners, {OWNER_COUNT * PETS_PER_OWNER} pets and "
        f"{len(VACCINES)} vaccines (idempotent), plus a demo superuser "
        f"{DEMO_ADMIN_USERNAME}/{DEMO_ADMIN_PASSWORD} if there is no superuser yet."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        with transaction.atomic():
            created = self.load_clinic()
        self.stdout.write(
            self.style.SUCCESS(
                f"Sample data: {Owner.objects.count()} owners, {Pet.objects.count()} pets, "
                f"{Vaccine.objects.count()} vaccines ({created} new rows)."
            )
        )
        self.ensure_superuser()

    def load_clinic(self) -> int:
        """Create the owners, pets and vaccines that are missing; return how many rows."""
        # A fixed seed and a fixed order of draws: the same data on every machine and run.
        rng = random.Random(SEED)
        created = 0
        vaccines = []
        for name, interval in VACCINES:
            vaccine, new = Vaccine.objects.get_or_create(
                name=name, defaults={"interval_months": interval}
            )
            vaccines.append(vaccine)
            created += new

        for i in range(OWNER_COUNT):
            first, last = FIRST_NAMES[i], LAST_NAMES[i]
            owner, new = Owner.objects.get_or_create(
                email=f"{first.lower()}.{last.lower()}@example.com",
                defaults={"name": f"{first} {last}", "city": CITIES[i % len(CITIES)]},
            )
            created += new
            for j in range(PETS_PER_OWNER):
                species = rng.choice(Pet.Species.values)
                birth_date = (
                    None
                    if rng.random() < 0.1
                    else date(2012, 1, 1) + timedelta(days=rng.randrange(12 * 365))
                )
                shots = rng.sample(vaccines, k=rng.randint(0, 3))
                pet, new = Pet.objects.get_or_create(
                    owner=owner,
                    name=PET_NAMES[(i * PETS_PER_OWNER + j) % len(PET_NAMES)],
                    defaults={"species": species, "birth_date": birth_date},
                )
                if new:
                    pet.vaccines.set(shots)
                created += new
        return created

    def ensure_superuser(self) -> None:
        """Create the well-known demo superuser, unless some superuser already exists."""
        users = get_user_model()._default_manager
        if users.filter(Q(is_superuser=True) | Q(username=DEMO_ADMIN_USERNAME)).exists():
            self.stdout.write("A superuser already exists; not creating the demo admin.")
            return
        users.create_superuser(DEMO_ADMIN_USERNAME, "admin@example.com", DEMO_ADMIN_PASSWORD)
        self.stdout.write(
            self.style.WARNING(
                f"Created superuser '{DEMO_ADMIN_USERNAME}' with password "
                f"'{DEMO_ADMIN_PASSWORD}'. This is a DEMO account: never keep it on a "
                "machine other people can reach."
            )
        )
