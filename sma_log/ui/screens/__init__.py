"""Full screens: home, start, live procedure."""
