from django.db import models


class Order(models.Model):
    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField()
    unit_cents = models.PositiveIntegerField()
    total_cents = models.PositiveIntegerField(null=True)
    status = models.CharField(max_length=20, default="new")  # new -> paid (by process_order)
    task_id = models.CharField(max_length=36, blank=True)
    receipt_sent = models.BooleanField(default=False)


class SalesReport(models.Model):
    """Written every minute by the periodic task report_sales."""

    created = models.DateTimeField(auto_now_add=True)
    paid_orders = models.PositiveIntegerField()
    revenue_cents = models.PositiveBigIntegerField()
