"""Patrol inspections (扫码巡检): the sites (checkpoints, checklists, routes, patrol plans), the
signed codes on their labels, the rounds the scheduler opens, and what patrollers found."""
