"""JSON views: place an order (its task is enqueued when the transaction commits), poll."""

import json

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_POST

from huey_core import TaskException
from huey_django import HUEY, enqueue_on_commit
from orders.models import Order, SalesReport
from orders.tasks import process_order, send_receipt


class PaymentDeclined(Exception):
    pass


@csrf_exempt
@require_POST
def create_order(request: HttpRequest) -> JsonResponse:
    try:
        data = json.loads(request.body)
        fields = {k: int(data[k]) for k in ("quantity", "unit_cents")}
        fields["item"] = str(data["item"])
    except (ValueError, KeyError, TypeError) as exc:
        return JsonResponse({"error": f"bad order: {exc!r}"}, status=400)
    try:
        with transaction.atomic():
            order = Order.objects.create(**fields)
            # The worker must find the order: enqueue once the transaction has committed.
            result = enqueue_on_commit(process_order.s(order.pk))
            order.task_id = result.id
            order.save(update_fields=["task_id"])
            send_receipt(order.pk)  # an on_commit_task: enqueued on commit too
            if data.get("decline"):
                raise PaymentDeclined("card declined")  # rolls back: no order, no tasks
    except PaymentDeclined as exc:
        return JsonResponse({"error": str(exc), "task": result.id}, status=402)
    return JsonResponse({"order": order.pk, "task": result.id}, status=201)


@require_GET
def order_detail(request: HttpRequest, pk: int) -> JsonResponse:
    order = Order.objects.filter(pk=pk).values().first()
    return JsonResponse(order or {"error": "no such order"}, status=200 if order else 404)


@require_GET
def task_result(request: HttpRequest, task_id: str) -> JsonResponse:
    try:
        value = HUEY.result(task_id, preserve=True)  # preserve: every poll sees it
    except TaskException as exc:
        return JsonResponse({"ready": True, "error": str(exc)})
    return JsonResponse({"ready": value is not None, "value": value})


@require_GET
def reports(request: HttpRequest) -> JsonResponse:
    rows = SalesReport.objects.order_by("id").values("paid_orders", "revenue_cents")
    return JsonResponse({"reports": list(rows), "pending": HUEY.pending_count()})
