"""Generate the bundled demo data (deterministic): ftl/pricing/data/squads.json and replay_match.json.

    .venv/bin/python scripts/make_demo_data.py [--out ftl/pricing/data]

squads.json: 48 national teams x 26 invented players in the shape of Sportmonks' team entity with
its squad (``players`` entries with a nested ``player``), plus our ``index_price`` (cents) on each
squad entry. replay_match.json: a 90-minute match between the first two teams as a list of
``{"at_s": seconds since kickoff, "response": <livescores/inplay response>}``.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from tests.pricing import shape

SEED = 2026
LEAGUE_ID = 732  # Sportmonks: World Cup
TEAM_ID0 = 18_500
PLAYER_ID0 = 37_400_000
FIXTURE_ID = 19_440_001
MIN_GAP_S, MAX_GAP_S = 18.0, 36.0  # match seconds between two recorded responses (file < 3 MB)
KICKOFF = datetime(2026, 6, 11, 19, 0, tzinfo=UTC)

# name, short code, strength (0.7 .. 1.6), name pool
TEAMS: list[tuple[str, str, float, str]] = [
    ("Mexico", "MEX", 1.05, "latin"),
    ("South Africa", "RSA", 0.8, "anglo_africa"),
    ("Canada", "CAN", 0.95, "anglo"),
    ("United States", "USA", 1.05, "anglo"),
    ("Argentina", "ARG", 1.6, "latin"),
    ("Brazil", "BRA", 1.55, "lusophone"),
    ("France", "FRA", 1.6, "french"),
    ("England", "ENG", 1.5, "anglo"),
    ("Spain", "ESP", 1.55, "latin"),
    ("Germany", "GER", 1.45, "germanic"),
    ("Portugal", "POR", 1.45, "lusophone"),
    ("Netherlands", "NED", 1.4, "germanic"),
    ("Belgium", "BEL", 1.3, "french"),
    ("Croatia", "CRO", 1.25, "slavic"),
    ("Italy", "ITA", 1.35, "italian"),
    ("Uruguay", "URU", 1.25, "latin"),
    ("Colombia", "COL", 1.25, "latin"),
    ("Morocco", "MAR", 1.25, "arabic"),
    ("Japan", "JPN", 1.15, "japanese"),
    ("Korea Republic", "KOR", 1.1, "korean"),
    ("Switzerland", "SUI", 1.15, "germanic"),
    ("Denmark", "DEN", 1.15, "nordic"),
    ("Senegal", "SEN", 1.15, "french_africa"),
    ("Ecuador", "ECU", 1.05, "latin"),
    ("Austria", "AUT", 1.1, "germanic"),
    ("Norway", "NOR", 1.15, "nordic"),
    ("Australia", "AUS", 0.95, "anglo"),
    ("Iran", "IRN", 0.95, "persian"),
    ("Saudi Arabia", "KSA", 0.85, "arabic"),
    ("Qatar", "QAT", 0.8, "arabic"),
    ("Egypt", "EGY", 0.95, "arabic"),
    ("Tunisia", "TUN", 0.9, "arabic"),
    ("Algeria", "ALG", 0.95, "arabic"),
    ("Ghana", "GHA", 0.95, "anglo_africa"),
    ("Ivory Coast", "CIV", 1.05, "french_africa"),
    ("Cape Verde", "CPV", 0.8, "lusophone"),
    ("Paraguay", "PAR", 1.0, "latin"),
    ("Uzbekistan", "UZB", 0.85, "slavic"),
    ("Jordan", "JOR", 0.8, "arabic"),
    ("New Zealand", "NZL", 0.75, "anglo"),
    ("Scotland", "SCO", 1.0, "anglo"),
    ("Panama", "PAN", 0.85, "latin"),
    ("Haiti", "HAI", 0.7, "french"),
    ("Curacao", "CUW", 0.7, "germanic"),
    ("Poland", "POL", 1.1, "slavic"),
    ("Turkey", "TUR", 1.15, "turkish"),
    ("Serbia", "SRB", 1.05, "slavic"),
    ("Nigeria", "NGA", 1.05, "anglo_africa"),
]

NAMES: dict[str, tuple[str, str]] = {  # first names, last names (space-separated)
    "latin": (
        "Alejandro Andrés Bruno Carlos Diego Emiliano Facundo Gonzalo Hugo Ignacio Javier Julián "
        "Lautaro Mateo Nicolás Pablo Rodrigo Santiago Tomás Valentín",
        "Aguirre Benítez Cabrera Domínguez Escobar Figueroa Gallardo Herrera Ibarra Juárez Lozano "
        "Medina Navarro Ocampo Paredes Quiroga Rojas Salazar Tapia Vidal Zamora Acosta Bravo",
    ),
    "lusophone": (
        "Anderson Caio Danilo Eduardo Fábio Gabriel Henrique Igor João Lucas Marcelo Nuno Otávio "
        "Pedro Rafael Rui Thiago Vítor Wesley Yuri",
        "Almeida Barbosa Cardoso Duarte Esteves Ferreira Gomes Lacerda Macedo Nogueira Oliveira "
        "Peixoto Queiroz Ribeiro Sampaio Teixeira Vasconcelos Xavier Moura Pires",
    ),
    "anglo": (
        "Aaron Ben Callum Daniel Ethan Finn George Harry Jack Jordan Kyle Liam Mason Nathan Owen "
        "Ryan Sam Tyler Will Zach",
        "Ashworth Bradley Carter Dawson Ellison Fletcher Grant Harding Irving Jennings Kellett Lowry "
        "Marsh Norris Oakley Pearce Radford Shaw Thornton Walsh",
    ),
    "anglo_africa": (
        "Abel Bongani Chidi Daniel Emeka Felix Godfrey Isaac Kelechi Kwame Lebo Musa Nathan Obinna "
        "Percy Samuel Sipho Themba Victor Yaw",
        "Adeyemi Boateng Dlamini Eze Khumalo Mensah Mokoena Nwosu Obi Okafor Owusu Sithole Tau "
        "Zulu Asante Appiah Ndlovu Mahlangu Iwobi Amankwah",
    ),
    "french": (
        "Adrien Bastien Clément Damien Étienne Florian Guillaume Hugo Julien Kévin Lucas Mathis "
        "Nathan Olivier Pierre Quentin Romain Sébastien Théo Yann",
        "Arnaud Bertrand Chevalier Dufour Fabre Garnier Lambert Lefèvre Mercier Noël Perrin Roussel "
        "Simon Thibault Vasseur Blanchard Girard Moreau Renaud Masson",
    ),
    "french_africa": (
        "Abdou Boubacar Cheikh Djibril Ibrahima Ismaël Karim Lamine Mamadou Moussa Ousmane Pape "
        "Sadio Seydou Souleymane Yaya Youssouf Bakary Idrissa Amadou",
        "Bamba Camara Cissé Coulibaly Diallo Diarra Diop Fofana Gueye Kanté Keïta Konaté Koné "
        "Mendy Ndiaye Sarr Sow Touré Traoré Sangaré",
    ),
    "germanic": (
        "Bastian Dominik Felix Florian Jonas Julian Kai Leon Lukas Marco Maximilian Niklas Philipp "
        "Robin Sebastian Stefan Thijs Tobias Daan Jens",
        "Bauer Becker Brandt Fischer Hartmann Hoffmann Keller Krüger Lange Meier Neumann Richter "
        "Schreiber Vogel Wagner Weber Bakker de Vries Jansen Visser",
    ),
    "italian": (
        "Alessandro Andrea Davide Federico Francesco Giacomo Giorgio Lorenzo Luca Marco Matteo "
        "Nicolò Riccardo Simone Stefano Tommaso Filippo Gianluca Manuel Pietro",
        "Barella Bianchi Colombo Conti De Luca Esposito Ferrara Galli Greco Lombardi Mancini "
        "Marino Moretti Ricci Rinaldi Romano Russo Santoro Villa Costa",
    ),
    "slavic": (
        "Aleksandar Bojan Dario Dušan Filip Ivan Jakub Kamil Luka Marko Mateo Milan Nikola Petar "
        "Stefan Tomasz Vladimir Zoran Oleg Bekzod",
        "Babić Horvat Jovanović Kowalski Kovačević Lewandowski Marić Nowak Novak Pavlović Perić "
        "Petrović Radić Savić Stanković Tadić Vuković Zieliński Rashidov Karimov",
    ),
    "nordic": (
        "Anders Bjørn Christian Emil Erik Frederik Henrik Jonas Kasper Lars Magnus Martin Mikkel "
        "Nils Oskar Rasmus Sander Sindre Tobias Viktor",
        "Andersen Berg Christensen Dahl Eriksen Halvorsen Hansen Holm Johansen Larsen Lund Madsen "
        "Nielsen Nygaard Olsen Pedersen Rasmussen Solberg Strand Thomsen",
    ),
    "arabic": (
        "Abdullah Ahmed Ali Amine Ayoub Bilal Hakim Hamza Hassan Karim Khalid Mahmoud Mohamed "
        "Mostafa Nabil Omar Rami Saad Yassine Youssef",
        "Al-Amri Al-Dawsari Al-Harbi Bennani Bouzid Chaabane El-Sayed Fathi Haddad Hamdi Kamal "
        "Mansour Nasser Rahmani Saber Salem Tahiri Yahya Zaki Belkacem",
    ),
    "persian": (
        "Ali Amir Ehsan Hossein Karim Majid Mehdi Milad Mohammad Morteza Omid Payam Reza Saeid "
        "Saman Shahab Vahid Alireza Arash Kaveh",
        "Ahmadi Bagheri Ebrahimi Farahani Ghasemi Hosseini Jafari Karimi Mahdavi Mohammadi Nazari "
        "Rahimi Rezaei Sadeghi Shariati Tehrani Yazdani Zand Moradi Kazemi",
    ),
    "japanese": (
        "Daichi Haruki Hiroki Kaoru Kenta Kaito Koji Makoto Ren Riku Ryota Shota Sho Takumi Taro "
        "Yuki Yuto Sota Daiki Kento",
        "Aoki Endo Fujita Hayashi Inoue Ito Kato Kobayashi Matsuda Mori Nakamura Ogawa Saito "
        "Sasaki Suzuki Takahashi Tanaka Watanabe Yamada Yoshida",
    ),
    "korean": (
        "Dong-hyun Hyun-woo Ji-hoon Jin-su Jun-ho Kang-in Min-jae Sang-ho Seung-ho Sung-min "
        "Tae-hwan Woo-young Young-gwon Jae-sung In-beom Hee-chan Gyu-sung Chang-hoon Hwan Seol",
        "Bae Cho Choi Han Hwang Jang Jeong Jung Kang Kim Ko Lee Lim Moon Oh Park Seo Shin Song Yoon",
    ),
    "turkish": (
        "Arda Burak Cengiz Emre Ferdi Hakan Kaan Kerem Mert Oğuz Orkun Salih Semih Umut Yusuf "
        "Zeki Baris Enes Irfan Cenk",
        "Akgün Aydin Çelik Demir Doğan Erdem Güler Kaya Kiliç Koç Korkmaz Kurt Öztürk Şahin "
        "Tosun Uğurlu Yildiz Yilmaz Arslan Bardakci",
    ),
}

POSITION_PLAN = [24] * 3 + [25] * 8 + [26] * 8 + [27] * 7  # GK, DEF, MID, ATT = 26
POSITION_FACTOR = {24: 0.8, 25: 0.9, 26: 1.0, 27: 1.15}


def _price(rng: random.Random, strength: float, position_id: int) -> int:
    raw = 800 * strength * POSITION_FACTOR[position_id] * math.exp(rng.gauss(0.0, 0.3))
    return int(min(max(round(raw / 5) * 5, 200), 6000))


def make_squads(rng: random.Random) -> dict[str, Any]:
    teams = []
    for t, (name, code, strength, pool) in enumerate(TEAMS):
        team_id = TEAM_ID0 + t
        firsts, lasts = (names.split() for names in NAMES[pool])
        used: set[str] = set()
        players = []
        for n, position_id in enumerate(POSITION_PLAN):
            while True:
                first, last = rng.choice(firsts), rng.choice(lasts)
                if f"{first} {last}" not in used:
                    break
            used.add(f"{first} {last}")
            player_id = PLAYER_ID0 + t * 100 + n + 1
            born = date(1992, 1, 1) + timedelta(days=rng.randrange(0, 12 * 365))
            players.append(
                {
                    "id": 900_000_000 + player_id,
                    "transfer_id": None,
                    "player_id": player_id,
                    "team_id": team_id,
                    "position_id": position_id,
                    "detailed_position_id": None,
                    "start": None,
                    "end": None,
                    "captain": n == 10,
                    "jersey_number": n + 1,
                    "index_price": _price(rng, strength, position_id),
                    "player": {
                        "id": player_id,
                        "sport_id": 1,
                        "country_id": 1000 + t,
                        "nationality_id": 1000 + t,
                        "position_id": position_id,
                        "common_name": f"{first[0]}. {last}",
                        "firstname": first,
                        "lastname": last,
                        "name": f"{first} {last}",
                        "display_name": f"{first} {last}",
                        "height": rng.randrange(168, 198),
                        "weight": rng.randrange(62, 92),
                        "date_of_birth": born.isoformat(),
                        "gender": "male",
                    },
                }
            )
        teams.append(
            {
                "id": team_id,
                "sport_id": 1,
                "country_id": 1000 + t,
                "venue_id": None,
                "gender": "male",
                "name": name,
                "short_code": code,
                "founded": None,
                "type": "national",
                "placeholder": False,
                "players": players,
            }
        )
    return {"data": teams}


class Side:
    """One team's players in the replayed match: who is on, who is rated, ratings."""

    def __init__(self, team: dict[str, Any], rng: random.Random) -> None:
        self.team_id: int = team["id"]
        squad = team["players"]
        by_pos = {p: [e for e in squad if e["position_id"] == p] for p in (24, 25, 26, 27)}
        starters = by_pos[24][:1] + by_pos[25][:4] + by_pos[26][:4] + by_pos[27][:2]
        bench = by_pos[25][4:5] + by_pos[26][4:5] + by_pos[27][2:3]
        self.entries = [(e, True) for e in starters] + [(e, False) for e in bench]
        self.on: set[int] = {e["player_id"] for e in starters}
        self.played: set[int] = set(self.on)
        self.off: set[int] = set()
        self.rating: dict[int, float] = {}
        self.rng = rng

    def subs(self, n: int) -> None:
        """Bring on the n-th substitute for the weakest outfield player still on."""
        bench = [e for e, starter in self.entries if not starter]
        incoming = bench[n]["player_id"]
        candidates = sorted(
            (pid for pid in self.on if pid in self.rating and pid not in self.off),
            key=lambda pid: self.rating[pid],
        )
        outgoing = candidates[0]
        self.on.discard(outgoing)
        self.off.add(outgoing)
        self.on.add(incoming)
        self.played.add(incoming)

    def drift(self, minute: float) -> None:
        for pid in self.on:
            if pid not in self.rating:
                if minute >= 6 + self.rng.random() * 6:
                    self.rating[pid] = round(self.rng.uniform(6.0, 6.7), 2)
                continue
            if self.rng.random() < 0.35:
                step = self.rng.gauss(0.0, 0.06)
                self.rating[pid] = round(min(max(self.rating[pid] + step, 3.0), 10.0), 2)

    def bump(self, pid: int, delta: float) -> None:
        if pid in self.rating:
            self.rating[pid] = round(min(max(self.rating[pid] + delta, 3.0), 10.0), 2)

    def lineups(self) -> list[dict[str, Any]]:
        return [
            shape.lineup(
                FIXTURE_ID,
                e["player_id"],
                self.team_id,
                name=e["player"]["display_name"],
                position_id=e["position_id"],
                jersey=e["jersey_number"],
                starter=starter,
                rating=self.rating.get(e["player_id"]),
            )
            for e, starter in self.entries
        ]


def _striker(side: Side) -> int:
    attackers: list[int] = [
        e["player_id"] for e, _ in side.entries if e["position_id"] == 27 and e["player_id"] in side.on
    ]
    return attackers[0]


def make_replay(squads: dict[str, Any], rng: random.Random) -> list[dict[str, Any]]:
    home_team, away_team = squads["data"][0], squads["data"][1]
    home, away = Side(home_team, rng), Side(away_team, rng)
    name = f"{home_team['name']} vs {away_team['name']}"
    # (match minute, kind, side, bump): a goal each, a red card, a penalty goal
    script: list[tuple[int, int, Side]] = [(23, 14, home), (58, 14, away), (71, 20, away), (84, 16, home)]
    subs = {62: (home, 0), 64: (away, 0), 73: (away, 1), 76: (home, 1), 81: (home, 2), 86: (away, 2)}
    events: list[dict[str, Any]] = []
    score = [0, 0]
    frames: list[dict[str, Any]] = []
    first_half_end = 45 * 60 + 140
    half_time = 15 * 60
    second_half_end = first_half_end + half_time + 45 * 60 + 230
    t = 0.0
    while True:
        if t <= first_half_end:
            state, minute = 2, min(t / 60, 45.0)
        elif t < first_half_end + half_time:
            state, minute = 3, 45.0
        elif t < second_half_end:
            state, minute = 22, min(45 + (t - first_half_end - half_time) / 60, 90.0)
        else:
            state, minute = 5, 90.0
        if state in (2, 22):
            for side in (home, away):
                side.drift(minute)
            for at, (side, n) in list(subs.items()):
                if minute >= at:
                    side.subs(n)
                    del subs[at]
            while script and minute >= script[0][0]:
                at, type_id, side = script.pop(0)
                other = away if side is home else home
                if type_id in (14, 16):
                    pid = _striker(side)
                    score[0 if side is home else 1] += 1
                    side.bump(pid, 1.0)
                    for p in side.on:
                        side.bump(p, 0.15)
                    for p in other.on:
                        other.bump(p, -0.2)
                else:
                    pid = sorted(p for p in side.on if p in side.rating)[2]
                    side.bump(pid, -1.2)
                    side.on.discard(pid)
                    for p in side.on:
                        side.bump(p, -0.1)
                player = next(e for e, _ in side.entries if e["player_id"] == pid)
                events.append(
                    shape.event(
                        FIXTURE_ID * 100 + len(events) + 1,
                        FIXTURE_ID,
                        type_id,
                        team_id=side.team_id,
                        player_id=pid,
                        player_name=player["player"]["display_name"],
                        minute=at,
                        result=f"{score[0]}-{score[1]}" if type_id != 20 else None,
                    )
                )
        fixture = shape.fixture(
            FIXTURE_ID,
            league_id=LEAGUE_ID,
            state_id=state,
            name=name,
            starting_at_timestamp=int(KICKOFF.timestamp()),
            lineups=home.lineups() + away.lineups(),
            events=events,
        )
        fixture["starting_at"] = KICKOFF.strftime("%Y-%m-%d %H:%M:%S")
        fixture["result_info"] = f"{name} ended {score[0]}-{score[1]}" if state == 5 else None
        remaining = 3000 - len(frames) - 1
        frames.append(
            {
                "at_s": round(t, 1),
                "response": shape.envelope(
                    [fixture], remaining=remaining, resets_in_seconds=max(3600 - int(t) % 3600, 1)
                ),
            }
        )
        if state == 5:
            break
        t += rng.uniform(60, 120) if state == 3 else rng.uniform(MIN_GAP_S, MAX_GAP_S)
    return frames


def _dump(obj: Any, path: Path) -> int:
    text = json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
    path.write_text(text + "\n", encoding="utf-8")
    return len(text.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent.parent / "ftl" / "pricing" / "data")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    squads = make_squads(rng)
    frames = make_replay(squads, random.Random(SEED + 1))
    size_s = _dump(squads, args.out / "squads.json")
    size_r = _dump(frames, args.out / "replay_match.json")
    players = sum(len(t["players"]) for t in squads["data"])
    print(f"squads.json: {len(squads['data'])} teams, {players} players, {size_s / 1e6:.2f} MB")
    print(f"replay_match.json: {len(frames)} frames, {size_r / 1e6:.2f} MB")


if __name__ == "__main__":
    main()
