"""The shop's tasks. huey_django imports this module in every process at start-up."""

from django.db.models import Sum

from huey_core import crontab
from huey_django import db_periodic_task, db_task, on_commit_task
from orders.models import Order, SalesReport


@db_task()
def process_order(order_id: int) -> int:
    """Price the order and mark it paid; the total in cents is the task's result."""
    order = Order.objects.get(pk=order_id)
    order.total_cents = order.quantity * order.unit_cents
    order.status = "paid"
    order.save(update_fields=["total_cents", "status"])
    return order.total_cents


@on_commit_task(retries=3, retry_delay=1)
def send_receipt(order_id: int) -> None:
    """Called inside the view's transaction, enqueued only once it commits."""
    Order.objects.filter(pk=order_id).update(receipt_sent=True)


@db_periodic_task(crontab(minute="*"))
def report_sales() -> None:
    """Every minute (and when a consumer starts): paid orders and revenue so far."""
    paid = Order.objects.filter(status="paid")
    revenue = paid.aggregate(total=Sum("total_cents"))["total"] or 0
    SalesReport.objects.create(paid_orders=paid.count(), revenue_cents=revenue)
