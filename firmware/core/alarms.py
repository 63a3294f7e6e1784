"""Alarm and status codes: one bit each, stable numbers shared by the extended output, the app
protocol, the diagnostics and the simulator trace. Never renumber; only append."""
from micropython import const

UNDER_VOLTAGE = const(0x0001)         # a cell <= V-min
OVER_VOLTAGE = const(0x0002)          # a cell >= V-max
UNDER_TEMP_CHARGE = const(0x0004)     # a cell below T-min charge
UNDER_TEMP_DISCHARGE = const(0x0008)  # a cell below T-min discharge
OVER_TEMP = const(0x0010)             # a cell above T-max
COMM_LOST = const(0x0020)             # no cell communication (timeout, chain break, missing boards)
TEMP_SENSOR_FAULT = const(0x0040)     # a board's NTC open or shorted (not a cell fault)
VOLT_SENSOR_FAULT = const(0x0080)     # a board's cell ADC implausible (not a cell fault)
CURRENT_SENSOR_FAULT = const(0x0100)  # a current sensor missing or implausible
SETTINGS_INVALID = const(0x0200)      # settings missing, corrupt, inconsistent or not configured
CELL_COUNT_MISMATCH = const(0x0400)   # boards in the chain outside the switch range
EARLY_WARNING = const(0x0800)         # a cell within 2 % of V-min or V-max
SOC_NOT_CALIBRATED = const(0x1000)    # no full/empty recalibration since boot
BALANCE_HOT = const(0x2000)           # a board derated or stopped balancing because it is hot
DEEP_DISCHARGE = const(0x4000)        # a cell at the chemistry's floor (latched, saved): load off
CELL_NOT_FOLLOWING = const(0x8000)    # a cell reading that does not follow the pack (frozen ADC
#                                       with noise): a voltage-sensor fault, both relays off
BALANCE_SWITCH_INVALID = const(0x10000)  # Begin switches 4-8 outside V-min + 200 mV .. V-max - 10 mV
#                                          (below the window: the charge relay stays open too)
SENSOR_HOLD = const(0x20000)          # a sensor fault that keeps coming back: the relays wait for
#                                       clean data, twice as long each time (core/rules.py SensorDoubt)
CHARGE_HELD = const(0x40000)          # after a V-max trip the charge relay waits until every cell
#                                       is at or below V-max - 2 % for 5 min (PackBrain.charge_hold_mv)
LINK_QUALITY = const(0x80000)         # the link failed while frames were being damaged: relays held
#                                       open until it has been clean for a while (roles/end.py)
BOARD_RESET_LOOP = const(0x100000)     # a board keeps restarting (rules.ResetLoop): both off
LINK_NEVER_UP = const(0x200000)        # no complete frame since boot: the chain never came up (no
#                                       break position or cell count is known), not a broken wire

# (bit, short name) in code order, for logs, the app and the trace
NAMES = (
    (UNDER_VOLTAGE, "under_voltage"),
    (OVER_VOLTAGE, "over_voltage"),
    (UNDER_TEMP_CHARGE, "under_temp_charge"),
    (UNDER_TEMP_DISCHARGE, "under_temp_discharge"),
    (OVER_TEMP, "over_temp"),
    (COMM_LOST, "comm_lost"),
    (TEMP_SENSOR_FAULT, "temp_sensor_fault"),
    (VOLT_SENSOR_FAULT, "volt_sensor_fault"),
    (CURRENT_SENSOR_FAULT, "current_sensor_fault"),
    (SETTINGS_INVALID, "settings_invalid"),
    (CELL_COUNT_MISMATCH, "cell_count_mismatch"),
    (EARLY_WARNING, "early_warning"),
    (SOC_NOT_CALIBRATED, "soc_not_calibrated"),
    (BALANCE_HOT, "balance_hot"),
    (DEEP_DISCHARGE, "deep_discharge"),
    (CELL_NOT_FOLLOWING, "cell_not_following"),
    (BALANCE_SWITCH_INVALID, "balance_switch_invalid"),
    (SENSOR_HOLD, "sensor_hold"),
    (CHARGE_HELD, "charge_held"),
    (LINK_QUALITY, "link_quality"),
    (BOARD_RESET_LOOP, "board_reset_loop"),
    (LINK_NEVER_UP, "link_never_up"),
)


def names(mask):
    """List of alarm names set in mask (allocates: for logs and host tools, not per cycle)."""
    return [name for bit, name in NAMES if mask & bit]
