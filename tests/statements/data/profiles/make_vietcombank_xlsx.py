"""Writes vietcombank.xlsx (invented rows in Vietcombank's statement layout); run once, commit."""

from pathlib import Path

from openpyxl import Workbook

book = Workbook()
sheet = book.active
sheet.append(["NGÂN HÀNG TMCP NGOẠI THƯƠNG VIỆT NAM"])
sheet.append(["SAO KÊ TÀI KHOẢN / STATEMENT OF ACCOUNT"])
sheet.append(["Số tài khoản", "0011000000000"])
sheet.append(["Loại tiền", "VND"])
sheet.append([])
sheet.append(["Ngày giao dịch", "Số tham chiếu", "", "Số tiền", "Mô tả"])
rows = [
    ("02/01/2025", "5001.10001", "+", "15,000,000", "CONG TY TNHH VI DU TRA LUONG THANG 12 2024"),
    ("03/01/2025", "5001.10002", "-", "1,250,000", "THANH TOAN TIEN DIEN EVN HCMC KY 12 2024"),
    ("05/01/2025", "5001.10003", "-", "85,000", "POS BACH HOA XANH Q3 HCM"),
    ("08/01/2025", "5001.10004", "-", "3,000,000", "CHUYEN TIEN NGUYEN VAN A tien nha thang 1"),
    ("10/01/2025", "5001.10005", "-", "11,000", "PHI DICH VU SMS BANKING T12"),
]
for row in rows:
    sheet.append(list(row))
sheet.append(["Tổng", "", "", "", ""])
book.save(Path(__file__).with_name("vietcombank.xlsx"))
