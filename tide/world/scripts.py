"""Everyday activities as fixed five-step scripts: the world regularity behind ``hellaswag``.

A step is a verb phrase completed with an actor (``"Tom kneads the dough."``). Knowing which step
follows which is learned from pretrain stories; held-out questions ask it for (activity, actor)
pairs that no training text contains.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Activity:
    label: str
    steps: tuple[str, ...]

    def sentence(self, actor: str, index: int) -> str:
        return f"{actor} {self.steps[index]}."


ACTIVITIES: tuple[Activity, ...] = tuple(
    Activity(label, tuple(steps.split(" / "))) for label, steps in (
    ("Baking bread",
     "mixes the flour / kneads the dough / lets it rise / bakes the loaf / slices the bread"),
    ("Washing a car",
     "fills a bucket / soaps the car / rinses the car / dries the car / polishes the mirrors"),
    ("Planting a tree",
     "digs a hole / sets the tree in / fills in the soil / presses the soil / waters the tree"),
    ("Making tea",
     "boils water / takes a cup / adds a tea bag / pours the water / adds milk"),
    ("Painting a wall",
     "covers the floor / opens the paint / dips the roller / rolls the wall / lets it dry"),
    ("Fixing a tire",
     ("removes the wheel / pulls out the tube / patches the hole / "
      "refits the tube / pumps the tire")),
    ("Brushing teeth",
     ("wets the brush / adds toothpaste / brushes each tooth / "
      "spits out the foam / rinses the mouth")),
    ("Doing laundry",
     ("sorts the clothes / loads the washer / starts the washer / "
      "hangs the clothes / folds the clothes")),
    ("Making a sandwich",
     ("takes two slices / spreads the butter / lays on cheese / "
      "closes the sandwich / cuts it in half")),
    ("Wrapping a gift",
     "boxes the gift / cuts the paper / folds the paper / tapes it shut / ties a ribbon"),
    ("Catching a fish",
     "baits the hook / casts the line / waits for a bite / reels it in / nets the fish"),
    ("Building a campfire",
     "clears the ground / stacks sticks / strikes a match / blows on the flame / adds logs"),
    ("Writing a letter",
     "takes a sheet / writes a greeting / writes the news / signs the letter / seals the envelope"),
    ("Making pancakes",
     "mixes the batter / heats a pan / pours the batter / flips the pancake / adds syrup"),
    ("Swimming laps",
     "puts on goggles / dives in / swims a length / turns at the wall / climbs out"),
    ("Changing a bulb",
     ("turns off the light / climbs a ladder / unscrews the bulb / "
      "fits a new bulb / turns on the light")),
    ("Mowing the lawn",
     "fuels the mower / starts the mower / mows the grass / empties the bag / stores the mower"),
    ("Knitting a scarf",
     "picks the yarn / casts on / knits the rows / binds off / trims the ends"),
    ("Making a snowman",
     "rolls a big ball / rolls a small ball / stacks the balls / adds a nose / adds a hat"),
    ("Packing for a trip",
     "makes a list / gets the suitcase / packs the clothes / zips the case / loads the car"),
    ("Feeding a dog",
     "gets the bowl / fills the bowl / calls the dog / sets down the bowl / washes the bowl"),
    ("Cooking rice",
     "rinses the rice / puts it in a pot / adds water / boils it / fluffs the rice"),
    ("Ironing a shirt",
     "sets up the board / heats the iron / sprays the shirt / irons the shirt / hangs it up"),
    ("Making a kite",
     "ties the sticks / adds the paper / glues the edges / ties on a string / flies the kite"),
    ("Carving a pumpkin",
     "cuts off the top / scoops the seeds / draws a face / carves the face / adds a candle"),
    ("Setting a table",
     "lays the cloth / sets the plates / adds the forks / fills the glasses / lights the candles"),
    ("Washing dishes",
     "fills the sink / adds soap / scrubs the dishes / rinses the dishes / stacks them to dry"),
    ("Repotting a plant",
     "fills a new pot / lifts out the plant / sets it in the pot / adds soil / waters the plant"),
    ("Making a bed",
     ("strips the sheets / spreads a sheet / tucks the corners / "
      "adds the blanket / fluffs the pillows")),
    ("Cleaning a window",
     "sprays the glass / wipes the glass / scrapes a spot / buffs the glass / checks for streaks"),
))


def story(activity: Activity, actor: str) -> str:
    """The whole script as a pretrain paragraph, in the same sentence form the questions use."""
    return f"{activity.label}: " + " ".join(
        activity.sentence(actor, i) for i in range(len(activity.steps)))
