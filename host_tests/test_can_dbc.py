"""Every CAN frame of every gateway profile decoded with cantools from the project's DBC
(docs/can/cellchain-bms.dbc, written from the public message descriptions): the firmware's
byte layout and the DBC agree, value by value."""
import os

import pytest

cantools = pytest.importorskip("cantools")

from core import canbms, chargelaw, extin  # noqa: E402
from gwpack import Pack, feed  # noqa: E402

DBC = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "docs", "can", "cellchain-bms.dbc")


@pytest.fixture(scope="module")
def db():
    return cantools.database.load_file(DBC)


def frames(profile, stopping=False, charge_allowed=True):
    p = Pack(16)
    cells = [3350] * 16
    cells[6] = 3480
    cells[12] = 3310
    temps = [250] * 16
    temps[3] = 312
    p.set_cells(cells, temps)
    p.brain.current_ma = 20400
    p.brain.soc_c = 8800
    p.brain.charge_allowed = charge_allowed
    dec = extin.ExtInDecoder()
    for _ in range(19):
        feed(dec, p.packet())
    law = chargelaw.ChargeLaw()
    law.update(dec.view, 1000)
    if stopping:
        law.stop(dec.view)
    bms = canbms.CanBms(profile)
    bms.fill(dec.view, law, stopping)
    return dec.view, law, {bms.ids[i]: bytes(bms.bufs[i][:bms.dlc[i]]) for i in range(bms.count)}


@pytest.mark.parametrize("name", canbms.PROFILE_NAMES)
def test_every_frame_decodes(db, name):
    v, law, fr = frames(canbms.profile_of(name))
    for fid, data in fr.items():
        msg = db.get_message_by_frame_id(fid)
        assert msg.length == len(data), hex(fid)
        db.decode_message(fid, data)
    d = db.decode_message(0x351, fr[0x351])
    assert d["ChargeVoltageLimit"] == pytest.approx(law.cvl_mv // 100 / 10)
    assert d["ChargeCurrentLimit"] == pytest.approx(law.ccl_da / 10)
    assert d["DischargeCurrentLimit"] == pytest.approx(law.dcl_da / 10)
    assert d["ChargeVoltageLimit"] > 0
    d = db.decode_message(0x355, fr[0x355])
    assert d["StateOfCharge"] == 88 and d["StateOfHealth"] == 97
    d = db.decode_message(0x356, fr[0x356])
    assert d["BatteryVoltage"] == pytest.approx(v.pack_mv / 1000, abs=0.01)
    assert d["BatteryCurrent"] == pytest.approx(20.4, abs=0.1)
    assert d["BatteryTemperature"] == pytest.approx(31.2, abs=0.5)


def test_victron_cells_and_alarms(db):
    v, law, fr = frames(canbms.VICTRON)
    d = db.decode_message(0x373, fr[0x373])
    assert d["MinCellVoltage"] == pytest.approx(3.310) and d["MaxCellVoltage"] == pytest.approx(3.480)
    assert d["MaxCellTemperature"] == pytest.approx(304, abs=1)
    assert fr[0x375].rstrip() == b"C7" and fr[0x374].rstrip() == b"C13"
    d = db.decode_message(0x35A, fr[0x35A], decode_choices=True)
    assert str(d["AlarmGeneral"]) == "ok" and str(d["AlarmHighVoltage"]) == "ok"
    v, law, fr = frames(canbms.VICTRON, stopping=True)
    d = db.decode_message(0x35A, fr[0x35A], decode_choices=True)
    assert str(d["AlarmGeneral"]) == "active" and str(d["AlarmBmsInternal"]) == "active"
    d = db.decode_message(0x351, fr[0x351])
    assert d["ChargeCurrentLimit"] == 0 and d["DischargeCurrentLimit"] == 0 and d["ChargeVoltageLimit"] > 40


def test_pylon(db):
    v, law, fr = frames(canbms.PYLON)
    assert fr[0x35E] == b"PYLON   "
    d = db.decode_message(0x359, fr[0x359])
    assert d["ModuleCount"] == 4 and d["TagP"] == ord("P") and d["TagN"] == ord("N")
    assert d["ProtSystemError"] == 0
    d = db.decode_message(0x35C, fr[0x35C])
    assert d["ChargeEnable"] == 1 and d["DischargeEnable"] == 1
    v, law, fr = frames(canbms.PYLON, charge_allowed=False)
    d = db.decode_message(0x35C, fr[0x35C])
    assert d["ChargeEnable"] == 0 and d["DischargeEnable"] == 1
    d = db.decode_message(0x351, fr[0x351])
    assert d["ChargeCurrentLimit"] == 0
    assert d["ChargeVoltageLimit"] == pytest.approx(v.pack_mv // 100 / 10)   # Deye: CVL = pack V
