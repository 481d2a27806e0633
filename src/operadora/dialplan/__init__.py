"""dialplan"""
