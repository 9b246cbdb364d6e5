"""Rule settings: flags and amounts written in a rule's `inventory` block next to its
conditions. Each is a field of the plan's rule (``plan_field``), read by the allocation
procedure of both engines (routing_dsl.runtime and engine.kernel)."""

from __future__ import annotations

from . import Criterion

CRITERIA = [
    Criterion("keep_item_groups_together", "setting",
              "Items of one order-item group (a kit, a gift set) go together to one facility "
              "or not at all.", hotwax="splitOrderItemGroup",
              samples=("keep_item_groups_together",), plan_field="keep_item_groups_together"),
    Criterion("ignore_facility_order_limit", "setting",
              "Facilities take orders beyond their daily order limit.",
              hotwax="ignoreFacilityOrderLimit", samples=("ignore_facility_order_limit",),
              plan_field="ignore_facility_order_limit"),
    Criterion("only_if_all_items_available", "setting",
              "The rule allocates only when every open item of the unit can be filled.",
              hotwax="brokerIfAllItemsAvailable", samples=("only_if_all_items_available",),
              plan_field="only_if_all_items_available"),
    Criterion("shipment_threshold", "setting",
              "Minimum value of each shipment the rule creates, and of what stays unfilled, "
              "when the unit is split. Example: `shipment_threshold 40.00`.", value="money",
              hotwax="shipmentThreshold",
              samples=("shipment_threshold 5", "shipment_threshold 30"),
              plan_field="shipment_threshold"),
    Criterion("split_cost", "setting",
              "What one more package costs when the rule splits a unit, added to the "
              "`shipping_cost` sort (an amount: `split_cost 5.00`) or to the `distance` sort "
              "(a distance: `split_cost 100 mi`) of every facility that would open a new "
              "package. Large values mean fewest splits; none means cheapest.",
              value="money", samples=("split_cost 2.5", "split_cost 5 UNIT"),
              plan_field="split_cost"),
]
